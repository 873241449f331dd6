"""The HTTP side of the fake: server lifecycle, routing, OAuth, faults and the request log."""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .model import DriveError, DriveModel, RequestRecord, Result, to_json

_FAULT_TEXT = {
    "userRateLimitExceeded": ("usageLimits", "User Rate Limit Exceeded"),
    "rateLimitExceeded": ("usageLimits", "Rate Limit Exceeded"),
    "backendError": ("global", "Backend Error"),
    "internalError": ("global", "Internal Error"),
}
_DEFAULT_REASON = {403: "userRateLimitExceeded", 429: "rateLimitExceeded", 500: "backendError"}


@dataclass
class Fault:
    """One injected fault (see ``FakeDrive.inject_fault``); ``remaining`` counts down."""

    status: int
    reason: str
    remaining: int
    action: str = "error"  # "error" | "drop" (before applying) | "drop_after" (after)
    method: str | None = None
    path: str | None = None  # regex searched in the path
    op: str | None = None  # fnmatch pattern on RequestRecord.op
    match: Callable[[RequestRecord], bool] | None = None

    def matches(self, rec: RequestRecord) -> bool:
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == rec.method)
            and (self.path is None or re.search(self.path, rec.path) is not None)
            and (self.op is None or fnmatch.fnmatchcase(rec.op, self.op))
            and (self.match is None or self.match(rec))
        )


_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p), op)
    for m, p, op in [
        ("POST", r"/token", "oauth.token"),
        ("GET", r"/discovery/v1/apis/drive/v2/rest", "discovery"),
        ("GET", r"/drive/v2/about", "about.get"),
        ("GET", r"/drive/v2/drives", "drives.list"),
        ("GET", r"/drive/v2/drives/([^/]+)", "drives.get"),
        ("GET", r"/drive/v2/files", "files.list"),
        ("POST", r"/drive/v2/files", "files.insert"),
        ("DELETE", r"/drive/v2/files/trash", "files.emptyTrash"),
        ("GET", r"/drive/v2/files/([^/]+)", "files.get"),
        ("PUT", r"/drive/v2/files/([^/]+)", "files.update"),
        ("PATCH", r"/drive/v2/files/([^/]+)", "files.patch"),
        ("DELETE", r"/drive/v2/files/([^/]+)", "files.delete"),
        ("POST", r"/drive/v2/files/([^/]+)/(trash|untrash|copy|touch)", "files.action"),
        ("POST", r"/upload/drive/v2/files", "files.insert:upload"),
        ("PUT", r"/upload/drive/v2/files/([^/]+)", "files.update:upload"),
        ("PUT", r"/upload/drive/v2/files", "upload.chunk"),
        ("DELETE", r"/upload/drive/v2/files(?:/[^/]+)?", "upload.cancel"),
    ]
]


class FakeDrive(DriveModel):
    """The fake Drive v2 server (see the package docstring)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        require_auth: bool = True,
        chunk_granularity: int = 256 * 1024,
        seed: int = 0,
    ) -> None:
        super().__init__(chunk_granularity, seed)
        self.host, self.port = host, port
        self.require_auth = require_auth
        self._tokens: set[str] = set()
        self._faults: list[Fault] = []
        self._log: list[RequestRecord] = []
        self.token_claims: list[dict[str, Any]] = []  # decoded JWT claims, one per token
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> FakeDrive:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        serve = self._httpd.serve_forever
        self._thread = threading.Thread(target=serve, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            assert self._thread is not None
            self._thread.join(5)
            self._httpd = self._thread = None

    def __enter__(self) -> FakeDrive:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_uri(self) -> str:
        return self.url + "/token"

    @property
    def discovery_url(self) -> str:
        """A ``discoveryServiceUrl`` for ``googleapiclient.discovery.build``."""
        return self.url + "/discovery/v1/apis/{api}/{apiVersion}/rest"

    # -- test hooks -----------------------------------------------------------------------
    def inject_fault(
        self,
        status: int = 403,
        reason: str | None = None,
        *,
        times: int = 1,
        action: str = "error",
        method: str | None = None,
        path: str | None = None,
        op: str | None = None,
        match: Callable[[RequestRecord], bool] | None = None,
    ) -> Fault:
        """The next ``times`` Drive API requests matching every given predicate fail.

        ``action="error"`` answers ``status`` with ``reason`` (default per status:
        403 userRateLimitExceeded, 429 rateLimitExceeded, 5xx backendError);
        ``"drop"`` closes the connection without applying the request; ``"drop_after"``
        applies it, then closes without an answer. Faults never hit /token or discovery.
        Faults are consumed in the order they were injected, one per request."""
        if action not in ("error", "drop", "drop_after"):
            raise ValueError(f"unknown fault action {action!r}")
        reason = reason or _DEFAULT_REASON.get(status, "backendError")
        fault = Fault(status, reason, times, action, method, path, op, match)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def count(
        self, op: str | None = None, method: str | None = None, status: int | None = None
    ) -> int:
        """How many logged requests match (``op`` is an fnmatch pattern)."""
        return sum(
            (op is None or fnmatch.fnmatchcase(r.op, op))
            and (method is None or r.method == method.upper())
            and (status is None or r.status == status)
            for r in self.requests
        )

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()

    def revoke_tokens(self) -> None:
        """Every issued access token becomes invalid (clients get 401 and must refresh)."""
        with self._lock:
            self._tokens.clear()

    # -- request handling -----------------------------------------------------------------
    def handle(self, h: _Handler, body: bytes) -> Result | None:
        """Route one request; ``None`` means "drop the connection without an answer"."""
        split = urllib.parse.urlsplit(h.path)
        query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        rec = RequestRecord(h.command, split.path, query, range=h.headers.get("Range"))
        rec.content_range = h.headers.get("Content-Range")
        rec.bytes_received = len(body)
        with self._lock:
            self._log.append(rec)
        status, headers, out = 404, {}, DriveError(404, "notFound", "Not Found").body()
        for method, pattern, op in _ROUTES:
            m = pattern.fullmatch(split.path)
            if m and method == h.command:
                rec.op = self._op_name(op, m.groups(), query)
                try:
                    result = self._dispatch(rec, m.groups(), h, body)
                except DriveError as e:
                    result = (e.status, {}, e.body())
                if result is None:
                    return None
                status, headers, out = result
                break
        rec.status, rec.bytes_sent = status, len(out)
        return status, headers, out

    @staticmethod
    def _op_name(op: str, groups: tuple[str, ...], query: dict[str, str]) -> str:
        if op == "files.action":
            return "files." + groups[1]
        if op == "files.get" and query.get("alt") == "media":
            return "files.get_media"
        if op.endswith(":upload"):
            if "upload_id" in query:
                return "upload.chunk"
            return op.replace("upload", query.get("uploadType", "?"))
        return op

    def _dispatch(
        self, rec: RequestRecord, groups: tuple[str, ...], h: _Handler, body: bytes
    ) -> Result | None:
        if rec.op == "oauth.token":
            return self._token(body)
        if rec.op == "discovery":
            return self._discovery()
        token = (h.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        with self._lock:
            if self.require_auth and token not in self._tokens:
                err = DriveError(401, "authError", "Invalid Credentials")
                return (
                    401,
                    {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
                    err.body(),
                )
            fault = next((f for f in self._faults if f.matches(rec)), None)
            if fault is not None:
                fault.remaining -= 1
                if fault.action == "drop":
                    return None
                if fault.action == "error":
                    domain, text = _FAULT_TEXT.get(fault.reason, ("global", fault.reason))
                    return (
                        fault.status,
                        {},
                        DriveError(fault.status, fault.reason, text, domain).body(),
                    )
            result = self._api(rec, groups, h.headers, body)
            return None if fault is not None else result

    def _token(self, body: bytes) -> Result:
        form = dict(urllib.parse.parse_qsl(body.decode()))
        grant = form.get("grant_type", "")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            try:
                payload = form["assertion"].split(".")[1]
                claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
                assert claims["iss"] and claims["scope"]
            except (KeyError, IndexError, ValueError, AssertionError):
                err = {"error": "invalid_grant", "error_description": "Invalid JWT"}
                return 400, {"Content-Type": "application/json"}, to_json(err)
        elif grant != "refresh_token":
            err = {"error": "unsupported_grant_type", "error_description": grant}
            return 400, {"Content-Type": "application/json"}, to_json(err)
        else:
            claims = {"refresh_token": form.get("refresh_token")}
        with self._lock:
            token = f"ya29.fake-{len(self.token_claims) + 1}-{self._rng.getrandbits(48):x}"
            self._tokens.add(token)
            self.token_claims.append(claims)
        return self._ok({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def _discovery(self) -> Result:
        from googleapiclient.discovery_cache import get_static_doc  # only this endpoint needs it

        doc = json.loads(get_static_doc("drive", "v2"))
        doc["rootUrl"] = doc["mtlsRootUrl"] = self.url + "/"
        doc["baseUrl"] = self.url + "/drive/v2/"
        return self._ok(doc)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    fake: FakeDrive

    def _serve(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        result = self.fake.handle(self, bytes(body))
        if result is None:
            self.close_connection = True
            return
        status, headers, out = result
        self.send_response(status, "Resume Incomplete" if status == 308 else None)
        headers.setdefault("Content-Type", "application/json; charset=UTF-8")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass
