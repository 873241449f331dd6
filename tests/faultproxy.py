"""An HTTP reverse proxy on 127.0.0.1 that counts traffic and injects faults on request.

Put it between an S3 client and a real server to measure requests and bytes on the wire, to
add latency per request, or to make the next N matching requests fail: a 503 SlowDown or 500
InternalError S3 error, a connection reset before any response, or a response whose body is
cut off half-way. Requests keep the Host header the client sent, so SigV4 signatures stay
valid. Bounded: faults are counted down, and every socket has a timeout.

    with FaultProxy("http://127.0.0.1:9000") as proxy:
        proxy.fail_next(2, "503", match=lambda req: req.method == "PUT")
        client = boto3.client("s3", endpoint_url=proxy.url, ...)
        print(proxy.stats.snapshot())
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["FaultProxy", "ProxyRequest", "TrafficSnapshot"]

FAULTS = ("503", "500", "reset", "truncate")
_ERRORS = {
    "503": (503, "SlowDown", "Please reduce your request rate."),
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass(frozen=True)
class ProxyRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass(frozen=True)
class TrafficSnapshot:
    requests: int = 0
    faults: int = 0
    bytes_in: int = 0  # client -> server: request lines, headers and bodies
    bytes_out: int = 0  # server -> client: status lines, headers and bodies

    def __sub__(self, other: TrafficSnapshot) -> TrafficSnapshot:
        return TrafficSnapshot(
            *(getattr(self, f.name) - getattr(other, f.name) for f in fields(self))
        )


class _Traffic:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = {f.name: 0 for f in fields(TrafficSnapshot)}

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                self._values[name] += n

    def snapshot(self) -> TrafficSnapshot:
        with self._lock:
            return TrafficSnapshot(**self._values)


class FaultProxy:
    """Reverse proxy to ``upstream`` (an http:// URL); see the module docstring."""

    def __init__(self, upstream: str, *, latency: float = 0.0, timeout: float = 30.0) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.latency = latency
        self.timeout = timeout
        self.stats = _Traffic()
        self._faults: list[tuple[str, Callable[[ProxyRequest], bool]]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(
        self, count: int, kind: str = "503", match: Callable[[ProxyRequest], bool] | None = None
    ) -> None:
        """Make the next ``count`` requests that ``match`` fail with ``kind`` (see FAULTS)."""
        if kind not in FAULTS:
            raise ValueError(f"fault kind must be one of {FAULTS}, not {kind!r}")
        with self._lock:
            self._faults.extend([(kind, match or (lambda request: True))] * count)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def _take_fault(self, request: ProxyRequest) -> str | None:
        with self._lock:
            for i, (kind, match) in enumerate(self._faults):
                if match(request):
                    del self._faults[i]
                    return kind
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = proxy.timeout

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body go out in separate writes: without this, Nagle's algorithm
                # and the client's delayed ACK stall every small response by ~40 ms
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return bytes(data)
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _proxy(self) -> None:
                body = self._body()
                split = urlsplit(self.path)
                request = ProxyRequest(
                    self.command, split.path, parse_qs(split.query), dict(self.headers.items())
                )
                head = (
                    len(self.requestline)
                    + 2
                    + sum(len(k) + len(v) + 4 for k, v in self.headers.items())
                    + 2
                )
                proxy.stats.add(requests=1, bytes_in=head + len(body))
                if proxy.latency:
                    time.sleep(proxy.latency)
                fault = proxy._take_fault(request)
                if fault is not None:
                    proxy.stats.add(faults=1)
                if fault == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault in _ERRORS:
                    status, code, message = _ERRORS[fault]
                    xml = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>{message}</Message></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(xml)))
                    self.end_headers()
                    self.wfile.write(xml)
                    proxy.stats.add(bytes_out=len(xml) + 100)
                    return
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=proxy.timeout)
                try:
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP
                    }
                    if body or self.command in ("PUT", "POST"):
                        headers["Content-Length"] = str(len(body))
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    length = response.getheader("Content-Length")
                    self.send_response_only(response.status, response.reason)
                    out_head = 0
                    for k, v in response.getheaders():
                        if k.lower() not in _HOP_BY_HOP:
                            self.send_header(k, v)
                            out_head += len(k) + len(v) + 4
                    data = response.read() if length is None else None
                    if data is not None:
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    total = int(length) if length is not None else len(data)
                    cut = total // 2 if fault == "truncate" else total
                    sent = 0
                    if data is not None:
                        self.wfile.write(data[:cut])
                        sent = min(cut, len(data))
                    else:
                        while sent < cut:
                            piece = response.read(min(1 << 20, cut - sent))
                            if not piece:
                                break
                            self.wfile.write(piece)
                            sent += len(piece)
                    proxy.stats.add(bytes_out=out_head + sent + 20)
                    if fault == "truncate":
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _proxy

        return Handler
