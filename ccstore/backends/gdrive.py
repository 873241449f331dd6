"""Google Drive backend: pydrive2 for authentication, the Drive v2 API it authorizes for data.

Drive has no paths, only folders (parents) and non-unique titles. Keys map onto a folder tree
below the store's root folder; folders are created on write and their ids cached. When several
files share a title in one folder, the newest (modifiedDate, then createdDate, then id) is the
object under that key; when several folders do, the oldest is used, so concurrent creators
converge on one. Reads are ranged media downloads; writes are resumable uploads streamed with
bounded memory, replacing an existing file's content in place (files.update) so readers never
see the key missing. A key -> file id cache keeps read-after-write independent of listing.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import BackendError, KeyNotFoundError
from ..forks import renew_after_fork
from ..keys import validate_key
from .base import (
    Backend,
    Buffer,
    ByteRange,
    ObjectStat,
    http_range,
)

__all__ = ["DriveBackend", "from_url"]

FOLDER = "application/vnd.google-apps.folder"
_FILE_FIELDS = "id,title,mimeType,fileSize,modifiedDate,createdDate,parents(id)"
_CHUNK = 256 << 10  # resumable upload chunks must be multiples of 256 KiB


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _newest_first(item: dict[str, Any]) -> tuple:
    return (item.get("modifiedDate", ""), item.get("createdDate", ""), item["id"])


class DriveBackend(Backend):
    """Objects in a Google Drive folder tree (see the module docstring).

    Authentication, in order of precedence: ``auth`` (a ready ``pydrive2.auth.GoogleAuth``,
    so callers control it completely; not pickled); ``credentials`` (a service-account JSON
    file path, or the name of an environment variable holding the JSON or a path to it); or
    ``client_secrets`` + ``saved_credentials`` (OAuth for laptops: the browser flow runs only
    with ``browser=True``, once, and saves the credentials file). ``shared_drive`` (an id)
    roots the store in a shared drive: service accounts have no storage of their own and can
    only write there. ``delete`` is "trash" (default, recoverable) or "delete" (permanent).
    ``api_url`` sends every request (metadata, media, uploads) to another Drive v2 endpoint,
    such as the local fake in ccstore's tests. ``retries`` bounds retries of rate limits
    (403 rateLimitExceeded/userRateLimitExceeded, 429) and 5xx, with randomized exponential
    backoff (googleapiclient's); exhausted retries raise BackendError.
    """

    scheme = "gdrive"
    supports_conditional_write = False  # Drive has no create-if-absent

    def __init__(
        self,
        root: str = "",
        *,
        auth: Any = None,
        credentials: str | None = None,
        client_secrets: str | None = None,
        saved_credentials: str | None = None,
        browser: bool = False,
        shared_drive: str | None = None,
        delete: str = "trash",
        api_url: str | None = None,
        retries: int = 5,
        chunk_size: int = 8 << 20,
    ) -> None:
        super().__init__()
        if delete not in ("trash", "delete"):
            raise ValueError(f"delete must be 'trash' or 'delete', not {delete!r}")
        self.root = root.strip("/")
        self._config = {
            "credentials": credentials,
            "client_secrets": client_secrets,
            "saved_credentials": saved_credentials,
            "browser": browser,
            "shared_drive": shared_drive,
            "delete": delete,
            "api_url": api_url,
            "retries": retries,
            "chunk_size": max(_CHUNK, chunk_size // _CHUNK * _CHUNK),
        }
        self._auth = auth
        self._lock = threading.RLock()
        self._folder_lock = threading.RLock()
        self._local = threading.local()
        self._folders: dict[str, str] = {}
        self._ids: dict[str, str] = {}
        renew_after_fork(self)

    def _after_fork(self) -> None:
        # each thread's service holds its own httplib2 connections: the parent's
        self._lock = threading.RLock()
        self._folder_lock = threading.RLock()
        self._local = threading.local()

    @property
    def url(self) -> str:
        return f"gdrive://{self.root}"

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "config": self._config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], **state["config"])

    # -- authentication and the API service -------------------------------------------------

    def _google_auth(self) -> Any:
        with self._lock:
            if self._auth is None:
                self._auth = self._authenticate()
            return self._auth

    def _authenticate(self) -> Any:
        from pydrive2.auth import GoogleAuth

        c = self._config
        if c["credentials"]:
            source = os.environ.get(c["credentials"], c["credentials"])
            config: dict[str, Any] = (
                {"client_json_dict": json.loads(source)}
                if source.lstrip().startswith("{")
                else {"client_json_file_path": source}
            )
            auth = GoogleAuth(
                settings={"client_config_backend": "service", "service_config": config}
            )
            auth.ServiceAuth()
            return auth
        if c["client_secrets"]:
            saved = c["saved_credentials"]
            settings = {
                "client_config_backend": "file",
                "client_config_file": c["client_secrets"],
                "save_credentials": bool(saved),
                "save_credentials_backend": "file",
                "save_credentials_file": saved,
                "oauth_scope": ["https://www.googleapis.com/auth/drive"],
            }
            auth = GoogleAuth(settings=settings)
            if saved and os.path.exists(saved):
                auth.LoadCredentialsFile(saved)
            if auth.credentials is None:
                if not c["browser"]:
                    raise BackendError(
                        "no saved Google Drive credentials: open the store once with "
                        "browser=True to sign in (they are then saved to saved_credentials)"
                    )
                auth.LocalWebserverAuth()
            elif auth.access_token_expired:
                auth.Refresh()
            return auth
        raise BackendError(
            "Google Drive needs credentials: pass credentials=<service-account JSON path or "
            "env var>, client_secrets= and saved_credentials= for OAuth, or auth=<GoogleAuth>"
        )

    @property
    def _service(self) -> Any:
        """A Drive v2 service per thread: httplib2 connections are not thread-safe."""
        service = getattr(self._local, "service", None)
        if service is None:
            from googleapiclient import discovery

            auth = self._google_auth()
            http = auth.Get_Http_Object()
            api_url = self._config["api_url"]
            if api_url is None:
                service = discovery.build("drive", "v2", http=http, cache_discovery=False)
            else:
                service = discovery.build_from_document(_document_at(api_url), http=http)
            self._local.service = service
        return service

    def _run(self, request: Any, key: str = "") -> Any:
        """Execute a request with googleapiclient's bounded retries; map errors to ours."""
        from googleapiclient.errors import HttpError

        try:
            return request.execute(num_retries=self._config["retries"])
        except HttpError as e:
            raise self._error(e, key) from e
        except OSError as e:
            raise BackendError(f"Google Drive request for {key!r} failed: {e}") from e

    def _error(self, error: Any, key: str) -> Exception:
        status = int(getattr(error.resp, "status", 0))
        text = str(error)
        if status == 404:
            return KeyNotFoundError(key, self.url)
        if "storageQuotaExceeded" in text or "do not have storage quota" in text:
            return BackendError(
                "Google Drive refused the upload: service accounts have no storage quota of "
                "their own; store into a shared drive (shared_drive=<id>) the account is a "
                "member of, or use OAuth user credentials"
            )
        if status in (403, 429) or status >= 500:
            return BackendError(
                f"Google Drive kept failing for {key!r} ({status}) after "
                f"{self._config['retries']} retries: {text}"
            )
        return BackendError(f"Google Drive request for {key!r} failed ({status}): {text}")

    def _drive_args(self) -> dict[str, Any]:
        return {"supportsAllDrives": True}

    def _list_args(self) -> dict[str, Any]:
        drive = self._config["shared_drive"]
        if drive:
            return {
                "supportsAllDrives": True,
                "includeItemsFromAllDrives": True,
                "corpora": "drive",
                "driveId": drive,
            }
        return {}

    # -- folders and ids --------------------------------------------------------------------

    def _children(self, parent: str, extra: str = "") -> list[dict[str, Any]]:
        query = f"{_quote(parent)} in parents and trashed = false" + extra
        items: list[dict[str, Any]] = []
        token = None
        while True:
            request = self._service.files().list(
                q=query,
                maxResults=1000,
                pageToken=token,
                fields=f"nextPageToken,items({_FILE_FIELDS})",
                **self._list_args(),
            )
            page = self._run(request)
            self.stats.record("lists")
            items.extend(page.get("items", []))
            token = page.get("nextPageToken")
            if not token:
                return items

    def _folder(self, path: str, create: bool) -> str | None:
        """Id of the folder at ``path`` (relative to the drive root), creating it if asked."""
        with self._lock:
            if path in self._folders:
                return self._folders[path]
        # One resolver at a time: two threads missing the same folder would both create it.
        with self._folder_lock:
            with self._lock:
                if path in self._folders:
                    return self._folders[path]
            return self._resolve_folder(path, create)

    def _resolve_folder(self, path: str, create: bool) -> str | None:
        if path == "":
            folder = self._config["shared_drive"] or "root"
        else:
            parent_path, _, name = path.rpartition("/")
            parent = self._folder(parent_path, create)
            if parent is None:
                return None
            matches = self._children(
                parent, f" and title = {_quote(name)} and mimeType = {_quote(FOLDER)}"
            )
            if matches:
                folder = min(matches, key=lambda m: (m.get("createdDate", ""), m["id"]))["id"]
            elif create:
                body = {"title": name, "mimeType": FOLDER, "parents": [{"id": parent}]}
                folder = self._run(self._service.files().insert(body=body, **self._drive_args()))[
                    "id"
                ]
                self.stats.record("writes")
            else:
                return None
        with self._lock:
            self._folders[path] = folder
        return folder

    def _split(self, key: str) -> tuple[str, str]:
        """(folder path relative to the drive root, title) of a key."""
        full = f"{self.root}/{validate_key(key)}" if self.root else validate_key(key)
        parent, _, name = full.rpartition("/")
        return parent, name

    def _file_id(self, key: str, *, fresh: bool = False) -> str:
        if not fresh:
            with self._lock:
                if key in self._ids:
                    return self._ids[key]
        parent_path, name = self._split(key)
        parent = self._folder(parent_path, create=False)
        if parent is None:
            raise KeyNotFoundError(key, self.url)
        matches = self._children(
            parent, f" and title = {_quote(name)} and mimeType != {_quote(FOLDER)}"
        )
        if not matches:
            raise KeyNotFoundError(key, self.url)
        file_id = max(matches, key=_newest_first)["id"]
        with self._lock:
            self._ids[key] = file_id
        return file_id

    def _with_id(self, key: str, action: Any) -> Any:
        """Run ``action(file_id)``; if a cached id went stale, resolve the key again once."""
        try:
            return action(self._file_id(key))
        except KeyNotFoundError:
            with self._lock:
                cached = self._ids.pop(key, None)
            if cached is None:
                raise
            return action(self._file_id(key, fresh=True))

    # -- the protocol -----------------------------------------------------------------------

    def read(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        header = http_range(byte_range)
        if header == "":
            return b""

        def get(file_id: str) -> bytes:
            request = self._service.files().get_media(fileId=file_id, **self._drive_args())
            if header:
                request.headers["Range"] = header
            try:
                return self._run(request, key)
            except BackendError as e:
                # the range starts at or past the end (the status, not the message: a URL
                # in the message can contain "416", e.g. in its port)
                if int(getattr(getattr(e.__cause__, "resp", None), "status", 0)) == 416:
                    return b""
                raise

        data = self._with_id(key, get)
        self.stats.record("reads", bytes_read=len(data))
        return data

    def write(self, key: str, parts: Iterable[Buffer], *, if_absent: bool = False) -> None:
        if if_absent:
            raise NotImplementedError("Google Drive has no conditional (create-if-absent) write")
        parent_path, name = self._split(key)
        upload = _streaming_upload(parts, self._config["chunk_size"])
        try:
            file_id = self._file_id(key)
        except KeyNotFoundError:
            file_id = None
        files = self._service.files()
        if file_id is not None:
            request = files.update(fileId=file_id, media_body=upload, **self._drive_args())
        else:
            parent = self._folder(parent_path, create=True)
            body = {
                "title": name,
                "parents": [{"id": parent}],
                "mimeType": "application/octet-stream",
            }
            request = files.insert(body=body, media_body=upload, **self._drive_args())
        response = None
        try:
            while response is None:
                starting = request.resumable_uri is None  # the first call also opens a session
                _, response = request.next_chunk(num_retries=self._config["retries"])
                self.stats.record("writes", requests=2 if starting else 1)
        except Exception as e:
            from googleapiclient.errors import HttpError

            if isinstance(e, HttpError):
                raise self._error(e, key) from e
            raise
        with self._lock:
            self._ids[key] = response["id"]
        self.stats.record("writes", requests=0, bytes_written=upload.total)

    def delete(self, key: str) -> None:
        self._with_id(key, lambda file_id: self._discard(file_id, key))
        with self._lock:
            self._ids.pop(key, None)
        self.stats.record("deletes")

    def list(self, prefix: str = "") -> Iterator[str]:
        base = prefix.rpartition("/")[0]
        start = f"{self.root}/{base}".strip("/") if base else self.root
        folder = self._folder(start, create=False)
        if folder is None:
            return
        found: set[str] = set()
        self._walk(folder, base + "/" if base else "", prefix, found)
        yield from sorted(found, key=lambda k: k.encode("utf-8", "surrogatepass"))

    def _walk(self, folder: str, path: str, prefix: str, found: set[str]) -> None:
        for item in self._children(folder):
            name = path + item["title"]
            if item["mimeType"] == FOLDER:
                sub = name + "/"
                if sub.startswith(prefix) or prefix.startswith(sub):
                    self._walk(item["id"], sub, prefix, found)
            elif name.startswith(prefix):
                found.add(name)

    def list_dir(self, prefix: str = "") -> tuple[list[str], list[str]]:
        base, _, stem = prefix.rpartition("/")
        start = f"{self.root}/{base}".strip("/") if base else self.root
        folder = self._folder(start, create=False)
        if folder is None:
            return [], []
        head = base + "/" if base else ""
        keys, prefixes = set(), set()
        for item in self._children(folder):
            if item["title"].startswith(stem):
                (prefixes if item["mimeType"] == FOLDER else keys).add(head + item["title"])
        order = lambda k: k.encode("utf-8", "surrogatepass")  # noqa: E731
        return sorted(keys, key=order), sorted((p + "/" for p in prefixes), key=order)

    def head(self, key: str) -> ObjectStat:
        def get(file_id: str) -> dict[str, Any]:
            request = self._service.files().get(
                fileId=file_id, fields=_FILE_FIELDS, **self._drive_args()
            )
            return self._run(request, key)

        meta = self._with_id(key, get)
        self.stats.record("heads")
        return ObjectStat(key, int(meta.get("fileSize", 0)))

    def copy(self, src: str, dst: str) -> None:
        parent_path, name = self._split(dst)
        parent = self._folder(parent_path, create=True)
        try:
            old = self._file_id(dst)
        except KeyNotFoundError:
            old = None
        body = {"title": name, "parents": [{"id": parent}]}
        copied = self._with_id(
            src,
            lambda fid: self._run(
                self._service.files().copy(fileId=fid, body=body, **self._drive_args()), src
            ),
        )
        with self._lock:
            self._ids[dst] = copied["id"]
        if old is not None:
            self._discard(old)
        self.stats.record("copies")

    def move(self, src: str, dst: str) -> None:
        src_parent, _ = self._split(src)
        dst_parent, name = self._split(dst)
        new_parent = self._folder(dst_parent, create=True)
        old_parent = self._folder(src_parent, create=False)
        try:
            old = self._file_id(dst)
        except KeyNotFoundError:
            old = None

        def patch(file_id: str) -> dict[str, Any]:
            request = self._service.files().patch(
                fileId=file_id,
                body={"title": name},
                addParents=new_parent,
                removeParents=old_parent,
                **self._drive_args(),
            )
            return self._run(request, src)

        moved = self._with_id(src, patch)
        with self._lock:
            self._ids.pop(src, None)
            self._ids[dst] = moved["id"]
        if old is not None and old != moved["id"]:
            self._discard(old)
        self.stats.record("copies")

    def _discard(self, file_id: str, key: str = "") -> None:
        """Trash or delete a file, as the ``delete`` option says."""
        files = self._service.files()
        request = (files.trash if self._config["delete"] == "trash" else files.delete)(
            fileId=file_id, **self._drive_args()
        )
        self._run(request, key)


def _streaming_upload(parts: Iterable[Buffer], chunk_size: int) -> Any:
    """A googleapiclient MediaUpload fed by an iterator of parts, size unknown up front."""
    from googleapiclient.http import MediaUpload

    class StreamingUpload(MediaUpload):
        """googleapiclient asks ``size()`` and then ``getbytes()`` from the last acknowledged
        offset, one chunk per request. ``size()`` reads ahead up to two chunks (plus a byte),
        so the total is known before the final chunk goes out: with an unknown total and a
        length that is an exact multiple of the chunk size, googleapiclient would otherwise
        end with an empty chunk and an invalid Content-Range (its issue #1801). Memory stays
        near two chunks."""

        def __init__(self) -> None:
            self._parts = iter(parts)
            self._buffer = bytearray()
            self._start = 0  # stream offset of self._buffer[0]
            self._done = False
            self.total = 0

        def _fill(self, nbytes: int) -> None:
            while not self._done and len(self._buffer) < nbytes:
                part = next(self._parts, None)
                if part is None:
                    self._done = True
                else:
                    self._buffer += part
                    self.total += len(part)

        def chunksize(self) -> int:
            return chunk_size

        def mimetype(self) -> str:
            return "application/octet-stream"

        def size(self) -> int | None:
            self._fill(2 * chunk_size + 1)
            return self.total if self._done else None

        def resumable(self) -> bool:
            return True

        def has_stream(self) -> bool:
            return False

        def getbytes(self, begin: int, length: int) -> bytes:
            if begin > self._start:  # the server has everything before begin
                del self._buffer[: begin - self._start]
                self._start = begin
            self._fill(length)
            return bytes(self._buffer[:length])

        def to_json(self) -> str:
            raise NotImplementedError("streamed uploads cannot be serialized")

    return StreamingUpload()


def _document_at(api_url: str) -> str:
    """googleapiclient's bundled Drive v2 discovery document, re-rooted at ``api_url``.

    ``client_options.api_endpoint`` would move metadata requests but leave media uploads on
    googleapis.com; rewriting the document moves every URL.
    """
    from googleapiclient.discovery_cache import get_static_doc

    document = json.loads(get_static_doc("drive", "v2"))
    root = api_url.rstrip("/") + "/"
    document["rootUrl"] = root
    document["baseUrl"] = root + document["servicePath"]
    document["batchPath"] = "batch/drive/v2"
    return json.dumps(document)


def from_url(url: str, options: dict[str, Any]) -> tuple[DriveBackend, str]:
    """``gdrive://Folder/Sub``: the store's root folder, from My Drive or a shared drive."""
    names = (
        "auth",
        "credentials",
        "client_secrets",
        "saved_credentials",
        "browser",
        "shared_drive",
        "delete",
        "api_url",
        "retries",
        "chunk_size",
    )
    kwargs = {name: options.pop(name) for name in names if name in options}
    return DriveBackend(url[len("gdrive://") :], **kwargs), ""
