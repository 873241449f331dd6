"""An HTTP reverse proxy on 127.0.0.1 that counts traffic and injects faults on request.

Put it between an S3 client and a real server to measure requests and bytes on the wire, to
add latency per request, to cap the bandwidth of request and response bodies, or to make the
next N matching requests fail (see ``FAULTS``):

``"503"`` / ``"500"`` / ``"403"``
    an S3 ``SlowDown`` / ``InternalError`` / ``AccessDenied`` XML error, without contacting
    the server;
``"reset"``
    the connection is reset (RST, no response at all), without contacting the server;
``"truncate"``
    the server's response is forwarded with its full ``Content-Length`` but only half the
    body, then the connection is closed;
``"stall"``
    no response: the connection stays open and silent for ``stall`` seconds, then closes
    (the server is not contacted) - a client read timeout shorter than that fires;
``"stall_body"``
    the server's status, headers and half the body are forwarded, then the connection goes
    silent for ``stall`` seconds and closes - a read timeout fires mid-body.
``"ignore_range"``
    the request goes to the server without its ``Range`` header, as to a server that ignores
    ranges (signed requests then fail their signature check: use it with unsigned ones).

Requests keep the Host header the client sent, so SigV4 signatures stay valid, and bodies are
streamed both ways (a request body is held in memory only when it comes chunked). Bounded:
faults are counted down, every socket has a timeout, stalls end at ``stall`` seconds or when
the proxy stops. ``stats`` counts requests, faults and the exact bytes read from / written to
the client sockets (request and status lines, headers, bodies); ``records`` keeps the last
10,000 requests with their status and byte counts.

    with FaultProxy("http://127.0.0.1:9000") as proxy:
        is_part = lambda req: req.method == "PUT" and "partNumber" in req.query
        proxy.fail_next(2, "503", match=is_part)
        client = boto3.client("s3", endpoint_url=proxy.url, ...)
        before = proxy.stats.snapshot()
        ...
        print(proxy.stats.snapshot() - before)
"""

from __future__ import annotations

import collections
import http.client
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FAULTS", "FaultProxy", "ProxyRecord", "ProxyRequest", "TrafficSnapshot"]

FAULTS = ("503", "500", "403", "reset", "truncate", "stall", "stall_body", "ignore_range")
_ERRORS = {
    "503": (503, "SlowDown", "Please reduce your request rate."),
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "403": (403, "AccessDenied", "Access Denied"),
}
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
}
_PIECE = 1 << 20  # bytes per read while streaming a body
_MAX_RECORDS = 10_000


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver listens with a backlog of 5: a client opening tens of connections at once
    # (ccstore's 32 page reads) overflowed it while the accepting thread waited for the GIL,
    # and each dropped SYN cost a one-second retransmit (100 points through the proxy: 1.1 s
    # instead of 0.12). A server's backlog is larger (Linux's default somaxconn is 4096).
    request_queue_size = 1024


@dataclass(frozen=True)
class ProxyRequest:
    """What a ``match`` predicate sees: the request line and headers (not the body)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class ProxyRecord:
    """One request through the proxy; ``status`` is None when no response was sent.

    Appended when the request arrives and updated as it goes; byte counts are added before
    the bytes are written, so a client that has seen a response sees it fully counted.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    status: int | None
    fault: str | None
    bytes_in: int
    bytes_out: int


@dataclass(frozen=True)
class TrafficSnapshot:
    requests: int = 0
    connections: int = 0  # TCP connections the clients opened
    faults: int = 0
    bytes_in: int = 0  # client -> proxy: request lines, headers and bodies
    bytes_out: int = 0  # proxy -> client: status lines, headers and bodies

    def __sub__(self, other: TrafficSnapshot) -> TrafficSnapshot:
        return TrafficSnapshot(
            *(getattr(self, f.name) - getattr(other, f.name) for f in fields(self))
        )

    def __add__(self, other: TrafficSnapshot) -> TrafficSnapshot:
        return TrafficSnapshot(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(self))
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

    def reset(self) -> None:
        with self._lock:
            self._values = dict.fromkeys(self._values, 0)


@dataclass(frozen=True)
class _Fault:
    kind: str
    match: Callable[[ProxyRequest], bool]
    stall: float


class _Counting:
    """A socket file wrapper reporting the bytes read after reading, written before writing."""

    def __init__(self, raw, count: Callable[[int], None]) -> None:
        self._raw = raw
        self._count = count

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._count(len(data))
        return data

    def readline(self, limit: int = -1) -> bytes:
        data = self._raw.readline(limit)
        self._count(len(data))
        return data

    def write(self, data) -> int:
        self._count(memoryview(data).nbytes)
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        self._raw.close()

    @property
    def closed(self) -> bool:
        return self._raw.closed


class _Link:
    """One direction of a link of ``rate`` bytes/s shared by every connection: each piece
    waits until the link has carried the pieces queued before it."""

    PIECE = 64 << 10

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._free_at = 0.0
        self._lock = threading.Lock()

    def send(self, write: Callable[[bytes | memoryview], Any], data: bytes | memoryview) -> None:
        view = memoryview(data)
        for start in range(0, len(view), self.PIECE):
            piece = view[start : start + self.PIECE]
            with self._lock:
                now = time.monotonic()
                self._free_at = max(self._free_at, now) + len(piece) / self.rate
                wait = self._free_at - now
            time.sleep(wait)
            write(piece)


class FaultProxy:
    """Reverse proxy to ``upstream`` (an http:// URL); see the module docstring.

    ``latency`` seconds are slept before each request is handled (and before an interim
    ``100 Continue``); ``bandwidth`` (bytes/s, each direction, shared by all connections) caps
    request and response bodies; ``timeout`` bounds every socket operation (client side and
    upstream).
    """

    def __init__(
        self,
        upstream: str,
        *,
        latency: float = 0.0,
        bandwidth: float | None = None,
        timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http":
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.latency = latency
        self.timeout = timeout
        self.bandwidth = bandwidth
        self._up = _Link(bandwidth) if bandwidth else None
        self._down = _Link(bandwidth) if bandwidth else None
        self.stats = _Traffic()
        self.records: collections.deque[ProxyRecord] = collections.deque(maxlen=_MAX_RECORDS)
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="faultproxy", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # ends stalls early
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(
        self,
        count: int,
        kind: str = "503",
        match: Callable[[ProxyRequest], bool] | None = None,
        *,
        stall: float = 10.0,
    ) -> None:
        """Make the next ``count`` requests that ``match`` fail with ``kind`` (see FAULTS).

        ``stall`` is how long the stall kinds keep the connection silent (cut short if the
        proxy stops). Faults queue in order; each request takes the first one it matches.
        """
        if kind not in FAULTS:
            raise ValueError(f"fault kind must be one of {FAULTS}, not {kind!r}")
        if count < 0 or stall < 0:
            raise ValueError("count and stall must not be negative")
        fault = _Fault(kind, match or (lambda request: True), min(stall, 600.0))
        with self._lock:
            self._faults.extend([fault] * count)

    def clear_faults(self) -> None:
        """Drop every fault not yet injected."""
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def _take_fault(self, request: ProxyRequest) -> _Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.match(request):
                    del self._faults[i]
                    return fault
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
                proxy.stats.add(connections=1)
                # headers and body go out in separate writes: without this, Nagle's algorithm
                # and the client's delayed ACK stall every small response by ~40 ms
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._record: ProxyRecord | None = None
                self._unrecorded = [0, 0]  # bytes in / out of this request before its record
                self.rfile = _Counting(self.rfile, self._count_in)
                self.wfile = _Counting(self.wfile, self._count_out)

            def _count_in(self, n: int) -> None:
                proxy.stats.add(bytes_in=n)
                if self._record is None:
                    self._unrecorded[0] += n
                else:
                    self._record.bytes_in += n

            def _count_out(self, n: int) -> None:
                proxy.stats.add(bytes_out=n)
                if self._record is None:
                    self._unrecorded[1] += n
                else:
                    self._record.bytes_out += n

            def _up(self, write: Callable[[Any], Any], data: Any) -> None:
                if proxy._up is None:
                    write(data)
                else:
                    proxy._up.send(write, data)

            def _down(self, write: Callable[[Any], Any], data: Any) -> None:
                if proxy._down is None:
                    write(data)
                else:
                    proxy._down.send(write, data)

            def handle_expect_100(self) -> bool:
                # the interim "100 Continue" is a round trip of its own: it pays the latency
                if proxy.latency:
                    time.sleep(proxy.latency)
                return super().handle_expect_100()

            def handle_one_request(self) -> None:
                self._record = None
                self._unrecorded = [0, 0]
                super().handle_one_request()

            def send_response_only(self, code: int, message: str | None = None) -> None:
                self._status = code
                if self._record is not None and code >= 200:
                    self._record.status = code
                super().send_response_only(code, message)

            # -- request bodies ------------------------------------------------------------

            def _chunked_body(self) -> bytes:
                data = bytearray()
                while True:
                    size = int(self.rfile.readline(1024).split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                            pass
                        return bytes(data)
                    data += self.rfile.read(size)
                    self.rfile.readline(1024)

            def _drain(self, length: int) -> None:
                while length > 0:
                    piece = self.rfile.read(min(_PIECE, length))
                    if not piece:
                        break
                    length -= len(piece)

            def _stall(self, seconds: float) -> None:
                proxy._stopping.wait(seconds)
                self.close_connection = True

            # -- the proxy -------------------------------------------------------------------

            def _proxy(self) -> None:
                self._status = None
                split = urlsplit(self.path)
                request = ProxyRequest(
                    self.command, split.path, parse_qs(split.query), dict(self.headers.items())
                )
                proxy.stats.add(requests=1)
                if proxy.latency:
                    time.sleep(proxy.latency)
                fault = proxy._take_fault(request)
                kind = fault.kind if fault else None
                self._record = ProxyRecord(
                    request.method, request.path, request.query, None, kind, *self._unrecorded
                )
                proxy.records.append(self._record)
                if fault is not None:
                    proxy.stats.add(faults=1)
                chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
                length = int(self.headers.get("Content-Length") or 0)
                if kind == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.close_connection = True
                    self.connection.close()
                    return
                if kind in _ERRORS or kind == "stall":
                    if chunked:
                        self._chunked_body()
                    else:
                        self._drain(length)
                    if kind == "stall":
                        self._stall(fault.stall)
                        return
                    status, code, message = _ERRORS[kind]
                    xml = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>{message}</Message><Resource>{split.path}</Resource>"
                        f"<RequestId>faultproxy</RequestId></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(xml)))
                    self.end_headers()
                    self.wfile.write(xml)
                    return
                self._forward(chunked, length, kind, fault.stall if fault else 0.0)

            def _forward(self, chunked: bool, length: int, kind: str | None, stall: float):
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=proxy.timeout)
                try:
                    body = self._chunked_body() if chunked else None
                    if body is not None:
                        length = len(body)
                    upstream.putrequest(
                        self.command, self.path, skip_host=True, skip_accept_encoding=True
                    )
                    dropped = {"content-length"} | ({"range"} if kind == "ignore_range" else set())
                    for k, v in self.headers.items():
                        if k.lower() not in _HOP_BY_HOP and k.lower() not in dropped:
                            upstream.putheader(k, v)
                    if length or self.command in ("PUT", "POST") or chunked:
                        upstream.putheader("Content-Length", str(length))
                    upstream.endheaders()
                    if body is not None:
                        self._up(upstream.send, body)
                    else:
                        remaining = length
                        while remaining > 0:
                            piece = self.rfile.read(min(_PIECE, remaining))
                            if not piece:
                                raise ConnectionError("client closed mid-request body")
                            self._up(upstream.send, piece)
                            remaining -= len(piece)
                    response = upstream.getresponse()
                    declared = response.getheader("Content-Length")
                    data = response.read() if declared is None else None
                    total = int(declared) if declared is not None else len(data)
                    self.send_response_only(response.status, response.reason)
                    for k, v in response.getheaders():
                        if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(total))
                    self.end_headers()
                    cut = total // 2 if kind in ("truncate", "stall_body") else total
                    if data is not None:
                        self._down(self.wfile.write, data[:cut])
                    else:
                        sent = 0
                        while sent < cut:
                            piece = response.read(min(_PIECE, cut - sent))
                            if not piece:
                                break
                            self._down(self.wfile.write, piece)
                            sent += len(piece)
                    if kind == "stall_body":
                        self.wfile.flush()
                        self._stall(stall)
                    if kind in ("truncate", "stall_body"):
                        self.wfile.flush()
                        self.close_connection = True
                        try:
                            self.connection.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                except (OSError, http.client.HTTPException) as e:
                    if self._status is not None:  # response under way: all we can do is cut it
                        self.close_connection = True
                        return
                    xml = (
                        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>BadGateway</Code>'
                        f"<Message>faultproxy: upstream failed: {e!r}</Message></Error>"
                    ).encode()
                    self.send_response(502)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(xml)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(xml)
                    self.close_connection = True
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _proxy

        return Handler
