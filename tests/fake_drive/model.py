"""The Drive v2 state and API semantics of the fake (no HTTP here; see server.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.client import HTTPMessage
from typing import Any

Result = tuple[int, dict[str, str], bytes]

FOLDER = "application/vnd.google-apps.folder"
ROOT_ID = "0AFakeMyDriveRootUk9PVA"
USER_EMAIL = "fake-drive@fake-project.iam.gserviceaccount.com"
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


class DriveError(Exception):
    """An API error, answered as Google's JSON error body."""

    def __init__(self, status: int, reason: str, message: str, domain: str = "global") -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.domain = status, reason, message, domain

    def body(self) -> bytes:
        err = {"domain": self.domain, "reason": self.reason, "message": self.message}
        return to_json({"error": {"errors": [err], "code": self.status, "message": self.message}})


def to_json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _not_found(file_id: str) -> DriveError:
    return DriveError(404, "notFound", f"File not found: {file_id}")


def bad_request(message: str, reason: str = "badRequest") -> DriveError:
    return DriveError(400, reason, message)


def _rfc3339(t: float) -> str:
    dt = datetime.fromtimestamp(t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_date(text: str) -> float:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"Invalid date: {text}", "invalid") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _truthy(value: str | None) -> bool:
    return (value or "").lower() == "true"


@dataclass
class DriveFile:
    id: str
    title: str
    mime_type: str
    parents: list[str]
    created: float
    modified: float
    seq: int
    content: bytes | None = None
    description: str | None = None
    explicitly_trashed: bool = False
    starred: bool = False
    drive_id: str | None = None
    version: int = 1

    @property
    def is_folder(self) -> bool:
        return self.mime_type == FOLDER


@dataclass
class UploadSession:
    id: str
    file_id: str | None  # None: files.insert; else files.update of this file
    metadata: dict[str, Any]
    query: dict[str, str]
    mime_type: str | None
    total: int | None
    data: bytearray = field(default_factory=bytearray)
    result: str | None = None  # file id once complete


@dataclass
class RequestRecord:
    """One request as the fake saw it; ``op`` is e.g. ``files.list``, ``files.get_media``,
    ``files.insert:resumable`` (session start), ``upload.chunk`` (a PUT to a session URI);
    ``status`` stays 0 when a fault dropped the connection."""

    method: str
    path: str
    query: dict[str, str]
    op: str = ""
    status: int = 0
    range: str | None = None
    content_range: str | None = None
    bytes_received: int = 0
    bytes_sent: int = 0


_ORDER_KEYS = {
    "createdDate": lambda f: f.created,
    "modifiedDate": lambda f: f.modified,
    "modifiedByMeDate": lambda f: f.modified,
    "lastViewedByMeDate": lambda f: f.modified,
    "recency": lambda f: f.modified,
    "title": lambda f: (f.title.casefold(), f.title),
    "title_natural": lambda f: (f.title.casefold(), f.title),
    "folder": lambda f: not f.is_folder,
    "starred": lambda f: not f.starred,
    "quotaBytesUsed": lambda f: len(f.content or b""),
}


class DriveModel:
    """Files, folders, shared drives and upload sessions, and the Drive v2 operations on them.

    Not thread-safe by itself: FakeDrive calls ``_api`` holding ``self._lock``."""

    def __init__(self, chunk_granularity: int, seed: int) -> None:
        self.chunk_granularity = chunk_granularity
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._files: dict[str, DriveFile] = {}
        self._drives: dict[str, str] = {}  # shared drive id -> name
        self._sessions: dict[str, UploadSession] = {}
        self._seq = 0
        self._clock = 0.0
        self._add(ROOT_ID, "My Drive", FOLDER, [])

    @property
    def url(self) -> str:
        raise NotImplementedError

    # -- inspection -----------------------------------------------------------------------
    def create_shared_drive(self, name: str) -> str:
        with self._lock:
            drive_id = "0A" + "".join(self._rng.choices(_ID_CHARS[:62], k=13)) + "Uk9PVA"
            self._drives[drive_id] = name
            self._add(drive_id, name, FOLDER, []).drive_id = drive_id
            return drive_id

    def content(self, file_id: str) -> bytes | None:
        with self._lock:
            return self._get(file_id, all_drives=True).content

    def resource(self, file_id: str) -> dict[str, Any]:
        with self._lock:
            return self._resource(self._get(file_id, all_drives=True))

    def file_ids(self) -> list[str]:
        """Every item (not roots), in creation order."""
        with self._lock:
            return [i for i, f in self._files.items() if f.parents]

    # -- state helpers --------------------------------------------------------------------
    def _tick(self) -> float:
        self._clock = round(max(time.time(), self._clock + 0.001), 3)  # whole ms, increasing
        return self._clock

    def _new_id(self) -> str:
        return "1" + "".join(self._rng.choices(_ID_CHARS, k=32))

    def _add(self, file_id: str, title: str, mime: str, parents: list[str]) -> DriveFile:
        now = self._tick()
        self._seq += 1
        f = DriveFile(file_id, title, mime, parents, now, now, self._seq)
        self._files[file_id] = f
        return f

    def _get(self, file_id: str, all_drives: bool) -> DriveFile:
        f = self._files.get(ROOT_ID if file_id == "root" else file_id)
        if f is None or (f.drive_id and not all_drives):
            raise _not_found(file_id)
        return f

    def _trashed(self, f: DriveFile) -> bool:
        while True:
            if f.explicitly_trashed:
                return True
            if not f.parents or f.parents[0] not in self._files:
                return False
            f = self._files[f.parents[0]]

    def _ancestors(self, f: DriveFile) -> list[str]:
        out: list[str] = []
        while f.parents and f.parents[0] in self._files:
            out.append(f.parents[0])
            f = self._files[f.parents[0]]
        return out

    def _resource(self, f: DriveFile) -> dict[str, Any]:
        base = f"{self.url}/drive/v2/files/{f.id}"
        r: dict[str, Any] = {
            "kind": "drive#file",
            "id": f.id,
            "etag": f'"{f.id[:8]}{f.version}"',
            "selfLink": base,
            "alternateLink": f"{self.url}/file/d/{f.id}/view",
            "title": f.title,
            "mimeType": f.mime_type,
            "labels": {
                "starred": f.starred,
                "hidden": False,
                "trashed": self._trashed(f),
                "restricted": False,
                "viewed": True,
            },
            "explicitlyTrashed": f.explicitly_trashed,
            "createdDate": _rfc3339(f.created),
            "modifiedDate": _rfc3339(f.modified),
            "modifiedByMeDate": _rfc3339(f.modified),
            "lastViewedByMeDate": _rfc3339(f.modified),
            "markedViewedByMeDate": _rfc3339(f.modified),
            "version": str(f.version),
            "parents": [
                {
                    "kind": "drive#parentReference",
                    "id": p,
                    "selfLink": f"{base}/parents/{p}",
                    "parentLink": f"{self.url}/drive/v2/files/{p}",
                    "isRoot": p == ROOT_ID or p in self._drives,
                }
                for p in f.parents
            ],
            "editable": True,
            "copyable": not f.is_folder,
            "shared": False,
            "spaces": ["drive"],
            "capabilities": {"canCopy": not f.is_folder, "canEdit": True},
            "lastModifyingUserName": "Fake Drive",
            "quotaBytesUsed": str(len(f.content or b"")),
        }
        if f.description is not None:
            r["description"] = f.description
        if f.drive_id:
            r["driveId"] = r["teamDriveId"] = f.drive_id
        else:
            owner = {"kind": "drive#user", "displayName": "Fake Drive", "isAuthenticatedUser": True}
            r["owners"] = [{**owner, "emailAddress": USER_EMAIL, "permissionId": "0"}]
            r["ownerNames"] = ["Fake Drive"]
        if f.content is not None and not f.mime_type.startswith("application/vnd.google-apps."):
            r["downloadUrl"] = f"{base}?alt=media&source=downloadUrl"
            r["webContentLink"] = f"{self.url}/uc?id={f.id}&export=download"
            r["fileSize"] = str(len(f.content))
            r["md5Checksum"] = hashlib.md5(f.content).hexdigest()
            r["headRevisionId"] = f"{f.id[:6]}{f.version}"
            r["originalFilename"] = f.title
            if "." in f.title:
                r["fileExtension"] = f.title.rsplit(".", 1)[1]
        return r

    def _parent(self, parent_id: str, query: dict[str, str]) -> DriveFile:
        parent = self._get(parent_id, _all_drives(query))
        if not parent.is_folder:
            raise bad_request(f"Parent {parent_id} is not a folder", "invalidParent")
        return parent

    def _set_parents(self, f: DriveFile, parents: list[str], query: dict[str, str]) -> None:
        if len(parents) > 1:
            raise DriveError(
                403, "cannotAddParent", "Increasing the number of parents is not allowed"
            )
        resolved = [self._parent(p, query) for p in parents]
        for p in resolved:
            if p.id == f.id or f.id in self._ancestors(p):
                raise bad_request("A folder cannot be moved into itself", "invalidParent")
        f.parents = [p.id for p in resolved]
        if resolved:
            f.drive_id = resolved[0].drive_id

    def _apply(self, f: DriveFile, body: dict[str, Any], query: dict[str, str]) -> None:
        """Apply writable metadata fields of ``body`` and the add/removeParents params."""
        if body.get("title") is not None:
            f.title = str(body["title"])
        if body.get("mimeType"):
            f.mime_type = body["mimeType"]
        if "description" in body:
            f.description = body["description"]
        labels = body.get("labels") or {}
        if "trashed" in labels:
            f.explicitly_trashed = bool(labels["trashed"])
        if "starred" in labels:
            f.starred = bool(labels["starred"])
        parents = list(f.parents)
        if body.get("parents") is not None:
            parents = [p["id"] if isinstance(p, dict) else p for p in body["parents"]]
        remove = {ROOT_ID if p == "root" else p for p in query.get("removeParents", "").split(",")}
        parents = [p for p in parents if (ROOT_ID if p == "root" else p) not in remove]
        parents += [p for p in query.get("addParents", "").split(",") if p]
        if parents != f.parents:
            self._set_parents(f, parents, query)
        f.modified = self._tick()
        if _truthy(query.get("setModifiedDate")) and body.get("modifiedDate"):
            f.modified = round(parse_date(body["modifiedDate"]), 3)

    def _create(
        self, body: dict[str, Any], query: dict[str, str], content: bytes | None, mime: str | None
    ) -> DriveFile:
        parents = [p["id"] if isinstance(p, dict) else p for p in body.get("parents") or []]
        for p in parents or ["root"]:
            self._parent(p, query)  # validate before creating anything
        mime_type = body.get("mimeType") or mime or "application/octet-stream"
        f = self._add(self._new_id(), "Untitled", mime_type, [])
        try:
            self._set_parents(f, parents or [ROOT_ID], query)
            self._apply(f, {k: v for k, v in body.items() if k != "parents"}, {})
        except DriveError:
            del self._files[f.id]
            raise
        if content is not None or not f.mime_type.startswith("application/vnd.google-apps."):
            f.content = content or b""
        return f

    def _set_content(self, f: DriveFile, data: bytes, mime: str | None) -> None:
        if f.is_folder:
            raise bad_request("Folders have no content")
        f.content = bytes(data)
        f.version += 1
        f.modified = self._tick()
        if mime and mime != "application/octet-stream":
            f.mime_type = mime

    def _delete(self, f: DriveFile) -> None:
        for child in [c for c in self._files.values() if f.id in c.parents]:
            self._delete(child)
        self._files.pop(f.id, None)

    def _api(
        self, rec: RequestRecord, groups: tuple[str, ...], headers: HTTPMessage, body: bytes
    ) -> Result:
        q, op = rec.query, rec.op
        meta = (
            json.loads(body or b"{}")
            if op in ("files.insert", "files.update", "files.patch", "files.copy")
            else {}
        )
        if op == "about.get":
            about = {"kind": "drive#about", "rootFolderId": ROOT_ID, "name": "Fake Drive"}
            return self._ok(
                {**about, "user": {"emailAddress": USER_EMAIL, "isAuthenticatedUser": True}}
            )
        if op == "drives.list":
            return self._ok(
                {"kind": "drive#driveList", "items": [self._drive(d) for d in self._drives]}
            )
        if op == "drives.get":
            if groups[0] not in self._drives:
                raise _not_found(groups[0])
            return self._ok(self._drive(groups[0]))
        if op == "files.list":
            return self._ok(self._list(q))
        if op == "files.insert":
            return self._ok(self._resource(self._create(meta, q, None, None)))
        if op == "files.emptyTrash":
            for f in [f for f in self._files.values() if f.explicitly_trashed and not f.drive_id]:
                self._delete(f)
            return 204, {}, b""
        if (
            op.startswith("files.insert:")
            or op.startswith("files.update:")
            or op.startswith("upload.")
        ):
            return self._upload(rec, groups[0] if groups else None, headers, body)
        f = self._get(groups[0], _all_drives(q))
        if op == "files.get":
            return self._ok(self._resource(f))
        if op == "files.get_media":
            return self._download(f, headers.get("Range"))
        if op in ("files.update", "files.patch"):
            self._apply(f, meta, q)
            return self._ok(self._resource(f))
        if op in ("files.trash", "files.untrash", "files.delete") and f.id in (
            ROOT_ID,
            *self._drives,
        ):
            raise DriveError(
                403,
                "insufficientFilePermissions",
                "The user does not have sufficient permissions for this file.",
            )
        if op in ("files.trash", "files.untrash"):
            f.explicitly_trashed = op == "files.trash"
            f.modified = self._tick()
            return self._ok(self._resource(f))
        if op == "files.touch":
            f.modified = self._tick()
            return self._ok(self._resource(f))
        if op == "files.delete":
            self._delete(f)
            return 204, {}, b""
        if op == "files.copy":
            if f.is_folder:
                raise DriveError(403, "cannotCopyFile", "This file cannot be copied by the user.")
            body_meta = {
                "mimeType": f.mime_type,
                "parents": f.parents,
                "description": f.description,
            }
            body_meta.update({k: v for k, v in meta.items() if v is not None})
            body_meta.setdefault("title", f"Copy of {f.title}")
            return self._ok(self._resource(self._create(body_meta, q, f.content, None)))
        raise bad_request(f"Unsupported operation {op}")

    @staticmethod
    def _ok(obj: Any) -> Result:
        return 200, {"Content-Type": "application/json; charset=UTF-8"}, to_json(obj)

    def _drive(self, drive_id: str) -> dict[str, Any]:
        return {"kind": "drive#drive", "id": drive_id, "name": self._drives[drive_id]}

    def _download(self, f: DriveFile, range_header: str | None) -> Result:
        if f.content is None or f.mime_type.startswith("application/vnd.google-apps."):
            raise DriveError(
                403,
                "fileNotDownloadable",
                "Only files with binary content can be downloaded. "
                "Use Export with Docs Editors files.",
            )
        data, size = f.content, len(f.content)
        headers = {"Content-Type": f.mime_type, "Accept-Ranges": "bytes"}
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", (range_header or "").strip())
        if not m or m.groups() == ("", ""):
            return 200, headers, data  # no Range, or one this fake ignores (multi-range)
        first, last = m.groups()
        if first == "":
            start, end = max(0, size - int(last)), size - 1
            unsatisfiable = int(last) == 0 or size == 0
        else:
            start, end = int(first), min(int(last) if last else size - 1, size - 1)
            if last and int(last) < start:
                return 200, headers, data  # syntactically invalid: ignored, as RFC 9110 says
            unsatisfiable = start >= size
        if unsatisfiable:
            err = DriveError(416, "requestedRangeNotSatisfiable", "Request range not satisfiable")
            return 416, {"Content-Range": f"bytes */{size}"}, err.body()
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return 206, headers, data[start : end + 1]

    def _list(self, q: dict[str, str]) -> dict[str, Any]:
        all_drives = _all_drives(q)
        include = _truthy(q.get("includeItemsFromAllDrives") or q.get("includeTeamDriveItems"))
        if include and not all_drives:
            raise bad_request(
                "The includeItemsFromAllDrives parameter can only be set to true when "
                "supportsAllDrives is also set to true.",
                "invalid",
            )
        corpora, drive = q.get("corpora", "default"), q.get("driveId") or q.get("teamDriveId")
        if corpora not in ("default", "user", "drive", "allDrives", "domain"):
            raise bad_request(f"Invalid corpora: {corpora}", "invalid")
        if (corpora == "drive") != bool(drive) or (drive and drive not in self._drives):
            raise bad_request(
                "The driveId parameter must be specified if and only if corpora is set to drive.",
                "invalid",
            )
        if corpora in ("drive", "allDrives") and not include:
            raise bad_request("includeItemsFromAllDrives must be true for this corpora", "invalid")
        try:
            max_results = int(q.get("maxResults", "100"))
            offset = (
                int(base64.urlsafe_b64decode(q["pageToken"]).decode()[2:])
                if q.get("pageToken")
                else 0
            )
        except (ValueError, UnicodeDecodeError):
            raise bad_request("Invalid Value", "invalid") from None
        if not 0 <= max_results <= 1000:
            raise bad_request(
                f"Invalid value '{max_results}'. Values must be within the range: [0, 1000]",
                "invalid",
            )
        max_results = max_results or 100
        from .query import QueryParser  # imported here: query.py imports this module

        predicate = QueryParser(q.get("q", ""), self._trashed).parse()
        items = [
            f
            for f in self._files.values()
            if f.parents
            and (f.drive_id is None or include)
            and (corpora != "drive" or f.drive_id == drive)
            and predicate(f)
        ]
        items.sort(key=lambda f: f.seq)
        for key in reversed([k.strip() for k in q.get("orderBy", "").split(",") if k.strip()]):
            name, _, direction = key.partition(" ")
            if name not in _ORDER_KEYS or direction.strip() not in ("", "desc", "asc"):
                raise bad_request(f"Invalid orderBy: {key}", "invalid")
            items.sort(key=_ORDER_KEYS[name], reverse=direction.strip() == "desc")
        page = items[offset : offset + max_results]
        out: dict[str, Any] = {
            "kind": "drive#fileList",
            "etag": f'"{len(items)}"',
            "selfLink": f"{self.url}/drive/v2/files",
            "incompleteSearch": False,
            "items": [self._resource(f) for f in page],
        }
        if offset + max_results < len(items):
            token = base64.urlsafe_b64encode(f"o:{offset + max_results}".encode()).decode()
            out["nextPageToken"] = token
            out["nextLink"] = f"{self.url}/drive/v2/files?pageToken={token}"
        return out

    def _upload(
        self, rec: RequestRecord, file_id: str | None, headers: HTTPMessage, body: bytes
    ) -> Result:
        q = rec.query
        if rec.op == "upload.cancel":
            self._sessions.pop(q.get("upload_id", ""), None)
            return 499, {}, b""
        if rec.op == "upload.chunk":
            return self._chunk(q.get("upload_id", ""), headers.get("Content-Range"), body)
        target = self._get(file_id, _all_drives(q)) if file_id else None
        kind = rec.op.split(":")[1]
        content_type = headers.get("Content-Type") or "application/octet-stream"
        if kind == "media":
            meta, data, mime = {}, body, content_type
        elif kind == "multipart":
            from .query import parse_multipart

            meta, data, mime = parse_multipart(body, content_type)
        elif kind == "resumable":
            meta = json.loads(body) if body.strip() else {}
            for p in meta.get("parents") or []:
                self._parent(p["id"] if isinstance(p, dict) else p, q)
            total = headers.get("X-Upload-Content-Length")
            sid = "".join(self._rng.choices(_ID_CHARS[:62], k=40))
            session = UploadSession(
                sid, file_id, meta, q, headers.get("X-Upload-Content-Type"), None
            )
            session.total = int(total) if total else None
            self._sessions[sid] = session
            location = f"{self.url}{rec.path}?" + urllib.parse.urlencode({**q, "upload_id": sid})
            return 200, {"Location": location, "X-GUploader-UploadID": sid}, b""
        else:
            raise bad_request(f"Invalid uploadType: {kind}", "invalid")
        return self._ok(self._resource(self._finish(target, meta, q, data, mime)))

    def _finish(
        self,
        target: DriveFile | None,
        meta: dict[str, Any],
        q: dict[str, str],
        data: bytes,
        mime: str | None,
    ) -> DriveFile:
        if target is None:
            return self._create(meta, q, bytes(data), mime)
        self._apply(target, meta, q)
        self._set_content(target, data, meta.get("mimeType") or mime)
        return target

    def _chunk(self, sid: str, content_range: str | None, body: bytes) -> Result:
        s = self._sessions.get(sid)
        if s is None:
            raise DriveError(404, "notFound", "Upload session not found or expired")
        if s.result is not None:
            return self._ok(self._resource(self._get(s.result, True)))
        final = False
        if content_range is None:  # the whole rest of the upload in one body
            s.data += body
            s.total, final = len(s.data), True
        elif m := re.fullmatch(r"bytes \*/(\d+|\*)", content_range.strip()):
            if m[1] != "*":
                s.total = int(m[1])
        elif m := re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", content_range.strip()):
            first, last = int(m[1]), int(m[2])
            if last < first or len(body) != last - first + 1:
                raise bad_request("Failed to parse Content-Range header.")
            if first > len(s.data):
                raise bad_request(
                    f"Invalid request. According to the Content-Range header, the upload offset is "
                    f"{first} byte(s), which exceeds already uploaded size of {len(s.data)} byte(s)"
                )
            if m[3] != "*":
                if s.total is not None and s.total != int(m[3]):
                    raise bad_request("Content-Range total does not match the upload's size.")
                s.total = int(m[3])
            s.data[first:] = body
            final = len(s.data) == s.total
            if not final and self.chunk_granularity:
                del s.data[len(s.data) // self.chunk_granularity * self.chunk_granularity :]
        else:
            raise bad_request("Failed to parse Content-Range header.")
        if s.total is not None and len(s.data) > s.total:
            raise bad_request("Upload is larger than its declared size.")
        if final or (s.total is not None and len(s.data) == s.total):
            target = self._get(s.file_id, True) if s.file_id else None
            f = self._finish(target, s.metadata, s.query, bytes(s.data), s.mime_type)
            s.result, s.data = f.id, bytearray()
            return self._ok(self._resource(f))
        headers = {"Range": f"bytes=0-{len(s.data) - 1}"} if s.data else {}
        return 308, headers, b""


def _all_drives(q: dict[str, str]) -> bool:
    return _truthy(q.get("supportsAllDrives")) or _truthy(q.get("supportsTeamDrives"))
