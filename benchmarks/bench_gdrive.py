"""Google Drive: HTTP requests per operation, ccstore vs cottoncandy 0.4.0, on the local fake.

Both libraries run against one FakeDrive (tests/fake_drive, the local fake of the Drive v2
HTTP API) in the same run: write a float32 array, open it, read one row, read it whole, and
list 1000 small objects in one folder. Every measurement runs in a fresh process (cottoncandy
from its own virtualenv, see envs.py), so caches and tokens start cold; the fake logs every
HTTP request that reaches it (token and discovery requests included), which is what is
counted. Writes a table into docs/benchmarks.md.

    python benchmarks/bench_gdrive.py                   # 2048 x 2048 float32, 1000 keys
    python benchmarks/bench_gdrive.py --side 4096 --keys 2500 --chunks 256,4096 --no-docs
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import envs  # noqa: E402
from harness import measure, table, timed  # noqa: E402
from report import write_section  # noqa: E402

ROW = 1000
MARK = "/bench-mark/"  # an unauthenticated GET the fake logs as a 404: splits setup from the op

# How the fake's op names are reported (anything else is shown under its op name).
KINDS = {
    "files.get": "metadata GET",
    "files.get_media": "media GET",
    "files.list": "list",
    "files.insert": "metadata insert",
    "files.update": "metadata update",
    "files.patch": "metadata update",
    "properties.insert": "properties.insert",
    "upload.chunk": "upload PUT",
    "oauth.token": "token",
    "discovery": "discovery",
}
AUTH = ("oauth.token", "discovery")


def _kind(op: str) -> str:
    if op.startswith(("files.insert:", "files.update:")):
        return "upload start" if op.endswith(":resumable") else f"upload ({op})"
    return KINDS.get(op, op or "unrouted")


def mark(url: str, label: str) -> None:
    """Tell the parent (through the fake's request log) that a phase starts here."""
    try:
        urllib.request.urlopen(url + MARK + label, timeout=10).close()
    except urllib.error.HTTPError:
        pass  # the fake answers 404: it only has to log the request


def row_index(side: int) -> int:
    return min(ROW, side - 1)


def make_array(side: int) -> Any:
    import numpy as np

    return np.random.default_rng(0).random((side, side), dtype=np.float32)


# -- measured in a fresh process: ccstore (this checkout, the dev virtualenv) --------------------


def ccstore_op(
    op: str,
    url: str,
    credentials: str,
    root: str,
    side: int,
    chunks: list[int] | None,
    prefix: str,
) -> tuple[float, dict[str, Any]]:
    """One ccstore operation on a fresh DriveBackend (no cached folder ids, token or layout)."""
    import numpy as np

    import ccstore
    from ccstore.backends.gdrive import DriveBackend

    backend = DriveBackend(root, credentials=credentials, api_url=url)
    store = ccstore.Store(backend)
    extra: dict[str, Any] = {}
    if op == "write":
        array = make_array(side)
        mark(url, "op")
        seconds, _ = timed(lambda: store.put("big", array, chunks=tuple(chunks or ()) or None))
    elif op == "open":
        mark(url, "op")
        seconds, x = timed(lambda: store["big"])
        extra["chunks"] = list(x.chunks)
    elif op == "row":
        x = store["big"]
        mark(url, "op")
        seconds, row = timed(lambda: x[row_index(side)])
        extra["ok"] = bool(np.array_equal(row, make_array(side)[row_index(side)]))
    elif op == "read":
        mark(url, "op")
        seconds, whole = timed(lambda: store.load("big"))
        extra["ok"] = bool(np.array_equal(whole, make_array(side)))
    elif op == "ls":
        mark(url, "op")
        seconds, names = timed(lambda: store.ls(prefix + "/"))
        extra["found"] = len(names)
    elif op == "glob":
        mark(url, "op")
        seconds, names = timed(lambda: store.glob(prefix + "/*"))
        extra["found"] = len(names)
    else:
        raise ValueError(op)
    extra["stats"] = backend.stats.snapshot().requests
    return seconds, extra


def seed_keys(url: str, credentials: str, root: str, prefix: str, count: int) -> None:
    """The objects to list (not measured): ``count`` tiny arrays below ``prefix``."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    import ccstore
    from ccstore.backends.gdrive import DriveBackend

    store = ccstore.Store(DriveBackend(root, credentials=credentials, api_url=url))
    store[f"{prefix}/k{0:05d}"] = np.arange(4)  # creates the folders once, before the threads
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.put(f"{prefix}/k{i:05d}", np.arange(4)), range(1, count)))


# -- measured in a fresh process: cottoncandy 0.4.0 (its own virtualenv) -------------------------


def _cottoncandy(url: str, secrets: str, credentials: str) -> Any:
    """cottoncandy's Drive interface, authenticated by its own code, talking to ``url``.

    ``GDriveClient.Authenticate`` loads the saved OAuth credentials and refreshes the expired
    token at their ``token_uri`` (the fake). PyDrive 1.x has no endpoint setting and
    cottoncandy builds the client and uses it in one constructor, so the construction is
    replayed step by step: the authorized ``GoogleAuth`` gets a service whose discovery
    document is rooted at the fake (the public ``service`` attribute, as tests/drive_client.py
    does for pydrive2), then cottoncandy's own ``initialise_drive`` runs as the constructor
    would, and the interface gets the two attributes its constructor sets for ``gdrive``.
    """
    from cottoncandy.backend import CCBackEnd
    from cottoncandy.gdriveclient import GDriveClient
    from cottoncandy.interfaces import DefaultInterface
    from googleapiclient import discovery
    from googleapiclient.discovery_cache import get_static_doc

    auth = GDriveClient.Authenticate(secrets, credentials)  # refresh grant at the fake
    auth.Authorize()  # authorized http + PyDrive's own service (googleapis.com, no request)
    document = json.loads(get_static_doc("drive", "v2"))
    document["rootUrl"] = url + "/"
    document["baseUrl"] = url + "/drive/v2/"
    auth.service = discovery.build_from_document(document, http=auth.http)
    client = GDriveClient.__new__(GDriveClient)
    CCBackEnd.__init__(client)
    client.drive = client.current_directory_object = client.dir = None  # as __init__ sets them
    client.service = client.rootID = None
    client.initialise_drive(auth)  # what GDriveClient.__init__ does after Authenticate
    interface = DefaultInterface.__new__(DefaultInterface)
    interface.backend_interface, interface.backend = client, "gdrive"
    return interface


def cottoncandy_op(
    op: str, url: str, secrets: str, credentials: str, root: str, side: int, prefix: str
) -> tuple[float, dict[str, Any]]:
    """One cottoncandy operation on a freshly constructed interface."""
    import contextlib
    import io

    import numpy as np

    cci = _cottoncandy(url, secrets, credentials)
    name = f"{root}/cc-big"
    extra: dict[str, Any] = {}
    mark(url, "op")
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            if op == "write":
                array = make_array(side)
                seconds, _ = timed(lambda: cci.upload_raw_array(name, array, compression=False))
            elif op == "open":  # no lazy open: the backend's metadata call is the closest
                seconds, meta = timed(lambda: cci.backend_interface.get_object_metadata(name))
                extra["meta"] = {k: meta.get(k) for k in ("dtype", "shape")}
            elif op == "row":  # no slicing: a row is a whole download
                seconds, row = timed(lambda: cci.download_raw_array(name)[row_index(side)])
                extra["ok"] = bool(np.array_equal(row, make_array(side)[row_index(side)]))
            elif op == "read":
                seconds, whole = timed(lambda: cci.download_raw_array(name))
                extra["ok"] = bool(np.array_equal(whole, make_array(side)))
            elif op == "ls":
                seconds, names = timed(lambda: cci.ls(f"{root}/{prefix}"))
                extra["found"] = len(names)
            elif op == "ls-wildcard":
                seconds, names = timed(lambda: cci.ls(f"{root}/{prefix}/k*"))
                extra["found"] = len(names)
            elif op == "glob":
                seconds, names = timed(lambda: cci.glob(f"{root}/{prefix}/*"))
                extra["found"] = None if names is None else len(names)
            else:
                raise ValueError(op)
    except Exception as e:  # reported in the table as "does not work"
        seconds, extra["error"] = 0.0, f"{type(e).__name__}: {e}"
    extra["printed"] = printed.getvalue()[-500:]
    return seconds, extra


# -- the fake, with the two Drive v2 features cottoncandy needs and tests/fake_drive lacks -----


def _fake_class() -> type:
    from fake_drive import FakeDrive
    from fake_drive.model import DriveError, RequestRecord

    class BenchDrive(FakeDrive):
        """FakeDrive plus what cottoncandy's Drive backend relies on and the fake does not model:

        * ``properties.insert`` (POST /drive/v2/files/{id}/properties), where cottoncandy keeps
          dtype, shape, order and compression, and ``properties`` in file resources;
        * double-quoted strings in ``q`` (cottoncandy's folder lookups send
          ``title="name" and "id" in parents``; Drive v2 accepted them, the fake only parses
          the documented single quotes), rewritten to single quotes before the fake parses them.

        Everything else, the request log included, is the fake's own behaviour.
        """

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.properties: dict[str, dict[str, str]] = {}

        def handle(self, h: Any, body: bytes) -> Any:
            split = urllib.parse.urlsplit(h.path)
            m = re.fullmatch(r"/drive/v2/files/([^/]+)/properties", split.path)
            if m and h.command == "POST":
                return self._insert_property(h, m[1], split, body)
            query = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
            if any(k == "q" and '"' in v for k, v in query):
                fixed = [(k, _single_quoted(v) if k == "q" else v) for k, v in query]
                h.path = split._replace(query=urllib.parse.urlencode(fixed)).geturl()
            return super().handle(h, body)

        def _insert_property(self, h: Any, file_id: str, split: Any, body: bytes) -> Any:
            query = dict(urllib.parse.parse_qsl(split.query))
            rec = RequestRecord("POST", split.path, query, op="properties.insert")
            rec.bytes_received = len(body)
            token = (h.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            with self._lock:
                self._log.append(rec)
                try:
                    if token not in self._tokens:
                        raise DriveError(401, "authError", "Invalid Credentials")
                    self._get(file_id, all_drives=True)
                    prop = json.loads(body or b"{}")
                    self.properties.setdefault(file_id, {})[prop["key"]] = prop["value"]
                    status, headers, out = self._ok({"kind": "drive#property", **prop})
                except DriveError as e:
                    status, headers, out = e.status, {}, e.body()
            rec.status, rec.bytes_sent = status, len(out)
            return status, headers, out

        def _resource(self, f: Any) -> dict[str, Any]:
            resource = super()._resource(f)
            props = self.properties.get(f.id)
            if props:
                resource["properties"] = [
                    {"kind": "drive#property", "key": k, "value": v, "visibility": "PUBLIC"}
                    for k, v in props.items()
                ]
            return resource

    return BenchDrive


def _single_quoted(q: str) -> str:
    """``q`` with every double-quoted string literal written in single quotes."""
    out, i = [], 0
    while i < len(q):
        c = q[i]
        if c in "'\"":
            j = i + 1
            while j < len(q) and q[j] != c:
                j += 2 if q[j] == "\\" else 1
            text = q[i + 1 : j]
            if c == '"':
                text = re.sub(r'\\(["\\])', r"\1", text).replace("\\", "\\\\").replace("'", "\\'")
            out.append("'" + text + "'")
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


# -- the parent: start the fake, run every operation, count -------------------------------------


def oauth_files(fake: Any, directory: Path) -> tuple[str, str]:
    """A client_secrets.json and saved oauth2client credentials (expired) for cottoncandy."""
    import datetime

    from oauth2client.client import OAuth2Credentials

    client = {"client_id": "fake-client.apps.googleusercontent.com", "client_secret": "x"}
    secrets = directory / "client_secrets.json"
    secrets.write_text(
        json.dumps(
            {
                "installed": client
                | {
                    "auth_uri": fake.url + "/auth",
                    "token_uri": fake.token_uri,
                    "redirect_uris": ["http://localhost"],
                }
            }
        )
    )
    credentials = directory / "credentials.txt"
    expired = datetime.datetime(2000, 1, 1)
    saved = OAuth2Credentials(
        None,
        client["client_id"],
        client["client_secret"],
        "fake-refresh-token",
        expired,
        fake.token_uri,
        None,
        scopes=["https://www.googleapis.com/auth/drive"],
    )
    credentials.write_text(saved.to_json())
    return str(secrets), str(credentials)


def count(records: list[Any]) -> dict[str, Any]:
    """Requests split at the child's marks: setup (before "op") and the operation itself."""
    phases: dict[str, list[Any]] = {"setup": [], "op": []}
    phase = "setup"
    for r in records:
        if r.path.startswith(MARK):
            phase = r.path[len(MARK) :]
            continue
        phases[phase].append(r)
    out = {}
    for name, recs in phases.items():
        api = [r for r in recs if r.op not in AUTH]
        out[name] = {
            "requests": len(api),
            "auth": Counter(r.op for r in recs if r.op in AUTH),
            "kinds": Counter(_kind(r.op) for r in api),
            "errors": Counter(f"{r.op} {r.status}" for r in api if r.status >= 400),
            "down": sum(r.bytes_sent for r in recs),
            "up": sum(r.bytes_received for r in recs),
        }
    return out


OPERATIONS = [
    # (label, ccstore op, cottoncandy op); None: the library has no such operation
    ("write the array", "write", "write"),
    ("open (cold)", "open", "open"),
    ("row slice x[{row}]", "row", "row"),
    ("full read (cold)", "read", "read"),
    ("list keys: ls", "ls", "ls"),
    ("list keys: glob", "glob", "glob"),
    ("list keys: ls with a wildcard", None, "ls-wildcard"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2048, help="array is side x side float32")
    parser.add_argument("--chunks", help="ccstore chunk shape, e.g. 256,2048 (default: auto)")
    parser.add_argument("--keys", type=int, default=1000, help="objects in the listed folder")
    parser.add_argument("--libraries", default="ccstore,cottoncandy")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    libraries = args.libraries.split(",")
    chunks = [int(c) for c in args.chunks.split(",")] if args.chunks else None

    from drive_client import service_account_info

    work = Path(tempfile.mkdtemp(prefix="ccstore-bench-gdrive-"))
    root, prefix = f"ccbench-{uuid.uuid4().hex[:8]}", "many"
    rows: list[dict[str, Any]] = []
    with _fake_class()() as fake:
        credentials = work / "service-account.json"
        credentials.write_text(json.dumps(service_account_info(fake)))
        secrets, saved = oauth_files(fake, work)
        expired = Path(saved).read_text()
        print(f"seeding {args.keys} keys ...", flush=True)
        seed_keys(fake.url, str(credentials), root, prefix, args.keys)
        cc_python = envs.python_for("cottoncandy") if "cottoncandy" in libraries else None
        for label, cc_op, cot_op in OPERATIONS:
            for library in libraries:
                if (cc_op if library == "ccstore" else cot_op) is None:
                    continue
                fake.reset_log()
                if library == "ccstore":
                    result = measure(
                        "bench_gdrive:ccstore_op",
                        op=cc_op,
                        url=fake.url,
                        credentials=str(credentials),
                        root=root,
                        side=args.side,
                        chunks=chunks,
                        prefix=prefix,
                    )
                else:
                    # the saved, expired credentials again: cottoncandy saves refreshed ones
                    Path(saved).write_text(expired)
                    result = measure(
                        "bench_gdrive:cottoncandy_op",
                        cc_python,
                        op=cot_op,
                        url=fake.url,
                        secrets=secrets,
                        credentials=saved,
                        root=root,
                        side=args.side,
                        prefix=prefix,
                    )
                counted = count(fake.requests)
                label = label.format(row=row_index(args.side))
                row = {"operation": label, "library": library, **counted, "extra": result.extra}
                rows.append(row)
                op = counted["op"]
                print(
                    f"{library:12s} {label:30s} {op['requests']:4d} requests "
                    f"{dict(op['kinds'])} auth {dict(op['auth'])} "
                    f"setup {counted['setup']['requests']} {dict(counted['setup']['kinds'])} "
                    f"{ {k: v for k, v in result.extra.items() if k != 'printed'} }",
                    flush=True,
                )
    report(rows, args, chunks)


def _breakdown(kinds: Counter) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]))


def _auth(counter: Counter) -> str:
    return ", ".join(f"{n} {op}" for op, n in sorted(counter.items())) or "-"


def _mib(n: int) -> str:
    return f"{n / 2**20:,.2f}"


CC_NOTES = {
    "write": "creates an empty file, then uploads the content as an update",
    "open": "`get_object_metadata` (no lazy open)",
    "row": "no slicing: downloads the whole array",
}


def _note(row: dict[str, Any]) -> str:
    """What the reader must know about a cell: failures, checks, caveats."""
    extra, notes = row["extra"], []
    if "error" in extra:
        return f"**does not work**: {extra['error']}"
    if extra.get("ok") is False:
        notes.append("**wrong data**")
    if "found" in extra:
        if extra["found"] is None:
            return "**does not work**: returns None (Drive glob unfinished upstream)"
        notes.append(f"{extra['found']} names")
    if row["library"] == "cottoncandy":
        notes += [text for word, text in CC_NOTES.items() if word in row["operation"]]
    if row["op"]["errors"]:
        notes.append("errors: " + ", ".join(f"{k} x{v}" for k, v in row["op"]["errors"].items()))
    wire = row["setup"]["requests"] + row["op"]["requests"]
    if "stats" in extra and extra["stats"] != wire:
        notes.append(f"`store.stats` counted {extra['stats']} of these {wire} requests")
    if "chunks" in extra:
        notes.append(f"chunks {tuple(extra['chunks'])}")
    return "; ".join(notes)


def report(rows: list[dict[str, Any]], args: Any, chunks: list[int] | None) -> None:
    mib = args.side * args.side * 4 / 2**20
    lines = []
    for r in rows:
        op = r["op"]
        failed = "error" in r["extra"] or r["extra"].get("found", 0) is None
        lines.append(
            [
                r["operation"],
                r["library"],
                "-" if failed else op["requests"],
                _breakdown(op["kinds"]) if op["requests"] else "",
                _auth(op["auth"]),
                _mib(op["down"]),
                _mib(op["up"]),
                _note(r),
            ]
        )
    setups = {r["library"]: r["setup"] for r in rows if r["operation"] == "open (cold)"}
    for library, setup in setups.items():
        lines.append(
            [
                "connect (before each operation above)",
                library,
                setup["requests"],
                _breakdown(setup["kinds"]),
                _auth(setup["auth"]),
                _mib(setup["down"]),
                _mib(setup["up"]),
                "",
            ]
        )
    chunking = f"chunks {tuple(chunks)}" if chunks else "ccstore's automatic chunks"
    text = (
        f"Server: the local fake of the Drive v2 API (`tests/fake_drive`). Array: "
        f"{args.side} x {args.side} float32 ({mib:,.0f} MiB, {chunking}, uncompressed; "
        f"cottoncandy `compression=False`); listing: {args.keys} small objects in one folder, "
        f"two levels below My Drive, both libraries listing the same folder. Every operation "
        f"runs in a fresh process with a fresh client (no cached ids, layouts or tokens); "
        f"ccstore's row slice is counted after an open (add the open when cold), cottoncandy "
        f"has neither open nor slicing, so its row is a cold full download. Requests are "
        "counted by the fake's own log, i.e. every HTTP request that reached the server, "
        "split by kind; OAuth token and discovery requests are shown apart (ccstore builds "
        "its service from the bundled discovery document and fetches a service-account token "
        "on its first call; cottoncandy refreshes its saved OAuth token while connecting). "
        "MiB = bodies only (headers not counted), down = server to client. Connecting "
        "(building the client, before each operation) is listed in the last rows.\n\n"
        + table(
            [
                "operation",
                "library",
                "requests",
                "breakdown",
                "auth requests",
                "MiB down",
                "MiB up",
                "notes",
            ],
            lines,
        )
        + "\n\n"
        "How cottoncandy 0.4.0 ran: its `GDriveClient.Authenticate` refreshed expired saved "
        "OAuth credentials against the fake; because PyDrive 1.x cannot be pointed at another "
        "endpoint and cottoncandy uses the client inside its constructor, the benchmark gives "
        "the authorized `GoogleAuth` a service rooted at the fake and then runs cottoncandy's "
        "own `initialise_drive` (no library function is patched). The benchmark's fake adds "
        "two Drive v2 features cottoncandy relies on and `tests/fake_drive` does not model: "
        "file `properties` (where cottoncandy keeps dtype and shape: four "
        "`properties.insert` calls per array) and double-quoted strings in `q` (cottoncandy's "
        "folder lookups). cottoncandy finds an object by listing its whole folder (pages of "
        "1000), so its costs grow with the folder, and it lists the Drive root at every "
        "connect; its object reads fetch the same metadata three times; its `cd` into a "
        "folder three or more levels deep never returns (`rebuild_current_path` re-fetches "
        "the same parent forever; tried once: ~1,500 `files.get` of one folder in 15 s), so "
        "the listed folder is "
        "two levels deep; a write creates an empty file and then uploads the "
        'content as an update (the "every upload twice" of the issue is two requests, not '
        "two copies of the data) and never replaces an earlier file of the same name.\n\n"
        "What the fake does not model (so real Drive may differ): latency, quotas and rate "
        "limits, eventual consistency of listings, HTTPS, and request headers in the byte "
        "counts; `fields` is accepted but ignored, so list and metadata responses carry full "
        "resources and the MiB down of listings is larger than on Drive."
    )
    print(text)
    if not args.no_docs:
        write_section("bench_gdrive", "Google Drive: requests per operation", text)


if __name__ == "__main__":
    main()
