"""A local fake of the Google Drive HTTP API v2, for tests that drive real clients (pydrive2).

Start it with ``FakeDrive().start()`` (or ``with FakeDrive() as drive:``); it listens on
127.0.0.1 on a free port, in a background thread (``ThreadingHTTPServer``, stdlib only).
Manual use: ``python -m tests.fake_drive --port 8765 [--service-account sa.json]``.
docs/fake-drive.md has the user guide and the table of what is and is not modelled. Layout:
``model.py`` Drive semantics and state, ``query.py`` the ``q`` language and multipart
parsers, ``server.py`` HTTP, OAuth, faults and the request log.

Endpoints (all JSON errors in Google's format ``{"error": {"errors": [{domain, reason,
message}], "code", "message"}}``):

* ``POST /token``: OAuth2 token endpoint (JWT-bearer grant of service accounts, refresh
  grant). The JWT's claims are decoded but its signature is not checked. Issued tokens are
  required as ``Authorization: Bearer`` on every API call (401 ``authError`` otherwise);
  ``revoke_tokens()`` makes clients refresh.
* ``GET /discovery/v1/apis/drive/v2/rest``: googleapiclient's bundled Drive v2 discovery
  document with ``rootUrl`` rewritten to this server, so ``discovery.build(...,
  discoveryServiceUrl=...)`` sends metadata, media *and upload* URLs here.
* ``/drive/v2/files``: insert, get (``alt=media`` with ``Range``: ``bytes=a-b``, ``a-``,
  ``-n``; 206 + Content-Range; 416 ``bytes */size``), list (``q``, ``maxResults``,
  ``pageToken``, ``orderBy``), update (PUT), patch, delete, trash, untrash, copy, touch,
  emptyTrash; ``/drive/v2/about``; ``/drive/v2/drives`` (list/get shared drives).
* ``/upload/drive/v2/files[/{id}]``: ``uploadType=media|multipart|resumable``. A resumable
  session (``Location: ...&upload_id=``) takes PUTs with ``Content-Range: bytes a-b/total``,
  ``bytes a-b/*`` and status queries ``bytes */total``; incomplete sessions answer 308 with
  ``Range: bytes=0-n``. Non-final chunks are persisted in multiples of ``chunk_granularity``
  (256 KiB, as Google asks clients to send), the rest must be re-sent, as a real server may
  ask. ``bytes a-(a-1)/a`` (an empty last chunk) is a 400 "Failed to parse Content-Range
  header.", as on Google (googleapiclient issue #1801).

Modelled semantics: folders (``application/vnd.google-apps.folder``), ``root`` alias, one
parent per item (403 ``cannotAddParent`` for more), non-unique titles, trash that hides
nothing from ``files.list`` unless the query says ``trashed = false``, trash inherited from
trashed folders, recursive delete, monotonic ``modifiedDate`` (1 ms apart), ``version``,
md5Checksum, ``downloadUrl`` pointing back here. Shared drives (``create_shared_drive``):
their items need ``supportsAllDrives=true`` (404 otherwise, as on Google), appear in lists
only with ``includeItemsFromAllDrives=true``, ``corpora=drive&driveId=`` restricts a list to
one drive; items carry ``driveId``/``teamDriveId`` and no owners. ``fields`` is accepted and
ignored (full resources are returned).

Test hooks: ``inject_fault`` (next N matching requests answer 403 rate limits, 429, 5xx, or
the connection drops before or after the request is applied), ``requests`` / ``count`` (one
``RequestRecord`` per request: op, method, path, query, Range, Content-Range, bytes in and
out, status), ``content``/``resource`` to inspect state, ``revoke_tokens``.

How the real pydrive2 client reaches it (tests/drive_client.py): pydrive2 has no endpoint
setting: ``GoogleAuth.Authorize`` calls ``build("drive", "v2")`` with the bundled (static)
discovery document, i.e. https://www.googleapis.com. Service-account auth is configured
through pydrive2's settings (``client_config_backend: service``, ``client_json_dict`` with a
throwaway RSA key and ``token_uri`` = this server's /token), so oauth2client's real JWT flow
runs. Then ``GoogleAuth.service`` - the public attribute every ``GoogleDrive`` and
``GoogleDriveFile`` call goes through - is set to a service built by googleapiclient from this
server's discovery document. ``client_options={"api_endpoint": ...}`` is not enough: media
upload URLs keep the document's ``https`` scheme (``_fix_up_media_path_base_url`` only swaps
the host). No pydrive2 or googleapiclient function is patched.
"""

from .model import FOLDER, ROOT_ID, USER_EMAIL, DriveError, DriveFile, RequestRecord
from .server import FakeDrive, Fault

__all__ = [
    "FOLDER",
    "ROOT_ID",
    "USER_EMAIL",
    "DriveError",
    "DriveFile",
    "FakeDrive",
    "Fault",
    "RequestRecord",
]
