"""S3 backend on boto3: AWS S3 and S3-compatible services (Ceph RGW, MinIO, SeaweedFS, moto).

Reads are ranged GETs streamed straight into the caller's buffer. Small writes are one PUT;
larger ones a multipart upload whose parts go up concurrently with bounded memory and which is
aborted if anything fails, so the old value stays and no parts are left billed. Listing
paginates; deletes batch; copies use boto3's managed (multipart, > 5 GB capable) copy.
"""

from __future__ import annotations

import functools
import http.client
import itertools
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, ClassVar, TypeVar

from ..errors import BackendError, KeyExistsError, KeyNotFoundError
from ..forks import renew_after_fork
from ..keys import validate_key
from ..options import default_page_concurrency
from .base import (
    Backend,
    Buffer,
    ByteRange,
    ObjectStat,
    Observer,
    http_range,
    scatter_stream,
)
from .s3_direct import DirectRequests, TransientResponse
from .s3_parts import PartBody, Piece, cut_parts

__all__ = ["S3Backend", "from_url"]

T = TypeVar("T")
_MIN_PART = 5 << 20  # S3's minimum size of every part but the last
_COPY_PART = 1 << 30  # server-side copy parts (S3 allows up to 5 GiB each)
_MISSING = {"404", "NoSuchKey", "NotFound"}
# boto3 clients are thread-safe and slow to build (~0.25 s: botocore parses S3's service
# model), so backends with the same settings in one process share one: a dask task or an
# unpickled store does not pay for a new client. A forked child starts afresh, since the
# parent's pooled connections must not be shared with it.
_CLIENTS: dict[tuple, Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _forget_clients() -> None:
    global _CLIENTS_LOCK
    _CLIENTS.clear()
    _CLIENTS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_clients)
# Raised by urllib3/botocore while a response body streams in; botocore's own retries end
# when the headers arrive, so these are retried here.
_STREAM_ERRORS: tuple[type[BaseException], ...] = ()


def _stream_errors() -> tuple[type[BaseException], ...]:
    global _STREAM_ERRORS
    if not _STREAM_ERRORS:
        import urllib3.exceptions
        from botocore import exceptions as be

        _STREAM_ERRORS = (
            be.ResponseStreamingError,
            be.IncompleteReadError,
            be.ReadTimeoutError,
            be.ConnectionClosedError,
            be.EndpointConnectionError,
            urllib3.exceptions.ProtocolError,
            urllib3.exceptions.ReadTimeoutError,
            TransientResponse,
            http.client.IncompleteRead,
            ssl.SSLError,
            ConnectionError,
            TimeoutError,
        )
    return _STREAM_ERRORS


class S3Backend(Backend):
    """Objects in one S3 bucket.

    Credentials and endpoint come from boto3's standard chain (environment, profiles,
    ``~/.aws``, ``AWS_ENDPOINT_URL``, instance roles) unless given: ``endpoint_url``,
    ``profile``, ``region``, ``anon`` (unsigned requests), or a ready ``session``
    (``boto3.Session``; not pickled — an unpickled backend uses the standard chain).

    ``path_style`` forces path-style addressing (default: path style when ``endpoint_url`` is
    set, as S3-compatible servers usually need). ``checksums="when_required"`` (default) stops
    boto3 >= 1.36 from adding CRC checksums that several S3-compatible services reject; each
    ccstore chunk carries its own CRC-32C. ``payload_signing`` decides whether request bodies
    are hashed (SHA-256) into the signature: by default only over plain ``http://``, where
    nothing else protects them in transit; over https TLS does, as it does for boto3's own
    uploads that carry a checksum, and the hash costs a core ~1 s per 1.4 GB.
    ``presigned_reads`` (default True) sends GETs to presigned URLs, signed once per key and
    reused for minutes (listings: once per page), through boto3's own HTTP session, skipping
    botocore's per-request work and response parsing (see s3_direct.py); other responses
    than a body, a listing, a missing key or an unsatisfiable range are repeated through boto3
    itself. ``direct_puts`` (default True) sends single PUTs (objects smaller than a part) the
    same way, signed as the client signs them; anything but a stored object or a failed
    precondition is repeated through boto3. With ``checksums`` other than "when_required" PUTs
    go through boto3, which adds the checksums. ``retries`` bounds attempts per request (503
    SlowDown, 500, throttling, connection resets, timeouts mid-body) with exponential backoff
    and jitter (``retries`` counts retries after the first attempt). ``part_size`` is the
    multipart part size; ``concurrency`` the parts in flight. The connection pool holds
    ``concurrency`` + ``page_concurrency`` connections (the store's page reads in flight
    beside its other requests). ``create_bucket=True`` creates a missing bucket.
    """

    scheme = "s3"
    supports_conditional_write = True
    writes_blocks = True
    # Page reads are small and hold no scratch memory: more in flight hide more round trips.
    # Ceph with 20 ms added per request, 100 random points of a 256 MiB array (64 page
    # reads), three runs each: 8 in flight 286-306 ms, 16 198-229, 32 179-189; obstore's
    # get_ranges 211-218. Straight to Ceph, with no latency to hide, all three 90-115 ms.
    transfer_defaults: ClassVar[dict[str, int]] = {
        **Backend.transfer_defaults,
        "page_concurrency": 32,
    }

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        profile: str | None = None,
        region: str | None = None,
        anon: bool = False,
        session: Any = None,
        path_style: bool | None = None,
        checksums: str = "when_required",
        payload_signing: bool | None = None,
        presigned_reads: bool = True,
        direct_puts: bool = True,
        retries: int = 5,
        connect_timeout: float = 10,
        read_timeout: float = 60,
        part_size: int = 8 << 20,
        concurrency: int = 8,
        page_concurrency: int | None = None,
        create_bucket: bool = False,
    ) -> None:
        super().__init__()
        if part_size < _MIN_PART:
            raise ValueError(f"part_size must be at least 5 MiB (S3's minimum), got {part_size}")
        self.bucket = bucket
        self._config = {
            "endpoint_url": endpoint_url,
            "profile": profile,
            "region": region,
            "anon": anon,
            "path_style": path_style,
            "checksums": checksums,
            "payload_signing": payload_signing,
            "presigned_reads": presigned_reads,
            "direct_puts": direct_puts,
            "retries": retries,
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "part_size": part_size,
            "concurrency": concurrency,
            "page_concurrency": (
                page_concurrency
                if page_concurrency is not None
                else default_page_concurrency(self.transfer_defaults, concurrency)
            ),
        }
        self._session = session
        self._local = threading.local()
        self._lock = threading.Lock()
        self._client_instance: Any = None
        self._pool: ThreadPoolExecutor | None = None
        renew_after_fork(self)
        if create_bucket:
            self.create_bucket()

    def _after_fork(self) -> None:
        # the client's connection pool and the upload threads belong to the parent
        self._local = threading.local()
        self._lock = threading.Lock()
        self._client_instance = None
        self._pool = None
        self.__dict__.pop("_direct", None)

    # -- configuration and connections ----------------------------------------------------

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}"

    def __getstate__(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "config": self._config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["bucket"], **state["config"])

    @property
    def _client(self) -> Any:
        """The boto3 client for these settings in this process, built on first use."""
        if self._client_instance is None:
            with self._lock:
                if self._client_instance is None:
                    self._client_instance = self._shared_client()
        return self._client_instance

    def _shared_client(self) -> Any:
        if self._session is not None:  # the caller's session: its credentials, not shared
            return self._make_client()
        settings = tuple(sorted(self._config.items()))
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(settings)
            if client is None:
                client = _CLIENTS[settings] = self._make_client()
            return client

    def _make_client(self) -> Any:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config
        from botocore.handlers import add_expect_header

        c = self._config
        session = self._session or boto3.Session(profile_name=c["profile"], region_name=c["region"])
        path_style = c["path_style"] if c["path_style"] is not None else bool(c["endpoint_url"])
        signing = c["payload_signing"]
        if signing is None:
            signing = not (c["endpoint_url"] or "https:").lower().startswith("https:")
        options: dict[str, Any] = {
            "max_pool_connections": max(
                10, 2 * c["concurrency"], c["concurrency"] + c["page_concurrency"]
            ),
            "retries": {"max_attempts": c["retries"], "mode": "standard"},  # retries, not total
            "connect_timeout": c["connect_timeout"],
            "read_timeout": c["read_timeout"],
            "s3": {
                "addressing_style": "path" if path_style else "auto",
                "payload_signing_enabled": signing,
            },
            "request_checksum_calculation": c["checksums"],
            "response_checksum_validation": c["checksums"],
        }
        # SigV4 everywhere: botocore would presign GET URLs with the deprecated SigV2, which
        # newer AWS regions refuse
        options["signature_version"] = UNSIGNED if c["anon"] else "s3v4"
        client = session.client(
            "s3", endpoint_url=c["endpoint_url"], region_name=c["region"], config=Config(**options)
        )
        # "Expect: 100-continue" costs every upload a round trip before its body goes out;
        # it only saves sending a body the server would refuse anyway.
        client.meta.events.unregister("before-call.s3", add_expect_header)
        return client

    @property
    def _uploads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._config["concurrency"], "ccstore-s3")
            return self._pool

    def create_bucket(self) -> None:
        """Create the bucket if it does not exist."""
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as e:
            if _code(e) not in _MISSING | {"NoSuchBucket"}:
                raise self._error(e, "") from e
        region = self._config["region"] or self._client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self._call(lambda: self._client.create_bucket(**kwargs), "")

    # -- error handling and retries ---------------------------------------------------------

    def _error(self, error: Exception, key: str) -> Exception:
        code = _code(error)
        if code in _MISSING:
            return KeyNotFoundError(key, self.url)
        if code == "NoSuchBucket":
            return BackendError(
                f"bucket {self.bucket!r} does not exist at {self._endpoint()}; create it, or "
                "open the store with create_bucket=True"
            )
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            return BackendError(
                f"access to {self.url}/{key} denied ({code}): check the credentials boto3 found "
                "(environment, profile, ~/.aws) and the bucket policy"
            )
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return KeyExistsError(key)
        return BackendError(f"S3 request for {self.url}/{key} failed after retries: {error}")

    def _endpoint(self) -> str:
        return self._config["endpoint_url"] or "AWS"

    def _call(self, fn: Callable[[], T], key: str) -> T:
        """Run one request (botocore retries transient errors itself); map errors to ours."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except ClientError as e:
            raise self._error(e, key) from e
        except BotoCoreError as e:
            raise BackendError(f"S3 request for {self.url}/{key} failed: {e}") from e

    def _with_stream_retries(self, fn: Callable[[], T], key: str, doing: str = "reading") -> T:
        """Retry a request whose response body failed mid-stream, with backoff and jitter."""
        attempts = self._config["retries"] + 1
        for attempt in range(attempts):
            try:
                return self._call(fn, key)
            except BackendError as e:
                cause = e.__cause__
                if not isinstance(cause, _stream_errors()) or attempt == attempts - 1:
                    raise
            except _stream_errors() as e:
                if attempt == attempts - 1:
                    where = f"{self.url}/{key}"
                    if isinstance(e, TransientResponse):
                        message = f"S3 request for {where} failed after retries: {e}"
                    else:
                        message = f"{doing} {where} failed {attempts} times mid-transfer: {e}"
                    raise BackendError(message) from e
            time.sleep(min(0.1 * 2**attempt, 5) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def _get_object(self, key: str, range_header: str | None) -> dict[str, Any]:
        """GetObject's response (Body, ContentLength): through a presigned URL where
        ``presigned_reads`` allows and it can answer, else through the client."""
        if self._config["presigned_reads"]:
            gets = self._direct
            response = gets.get(key, range_header) if gets is not None else None
            if response is not None:
                return response
        kwargs = {"Bucket": self.bucket, "Key": key}
        if range_header:
            kwargs["Range"] = range_header
        return self._client.get_object(**kwargs)

    @functools.cached_property
    def _direct(self) -> DirectRequests | None:
        # Two threads racing here at most build a second (cheap, empty) URL cache.
        return DirectRequests.for_client(self._client, self.bucket)

    # -- the protocol -----------------------------------------------------------------------

    def read(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        validate_key(key)
        header = http_range(byte_range)
        if header == "":
            return b""

        def get() -> bytes:
            try:
                response = self._get_object(key, header)
            except Exception as e:
                if _code(e) == "InvalidRange":  # the range starts at or past the end
                    self._client.head_object(Bucket=self.bucket, Key=key)  # exists? else 404
                    return b""
                raise
            return response["Body"].read()

        data = self._with_stream_retries(get, key)
        self.stats.record("reads", bytes_read=len(data))
        return data

    def read_into(self, key: str, start: int, out: memoryview) -> int:
        return self.read_scatter(key, start, [out])

    def read_scatter(
        self,
        key: str,
        start: int,
        buffers: Sequence[memoryview],
        observe: Observer | None = None,
    ) -> int:
        validate_key(key)
        total = sum(b.nbytes for b in buffers)
        if total == 0:
            return 0

        def get() -> int:
            try:
                response = self._get_object(key, f"bytes={start}-{start + total - 1}")
            except Exception as e:
                if _code(e) == "InvalidRange":
                    self._client.head_object(Bucket=self.bucket, Key=key)
                    return 0
                raise
            length = int(response.get("ContentLength", total))
            if length > total:
                _release(response["Body"])
                raise BackendError(
                    f"{self.url}/{key}: asked for {total} bytes at {start}, the server sent "
                    f"{length}: it ignores Range requests"
                )
            try:
                body = response["Body"]
                done = scatter_stream(lambda view: _read_body_into(body, view), buffers, observe)
            finally:
                _release(response["Body"])
            if done < length:
                # a connection closed mid-body reads as the end of the data
                raise ConnectionError(f"response body ended after {done} bytes")
            return done

        done = self._with_stream_retries(get, key)
        self.stats.record("reads", bytes_read=done)
        return done

    def write(self, key: str, parts: Iterable[Buffer], *, if_absent: bool = False) -> None:
        validate_key(key)
        conditional = {"IfNoneMatch": "*"} if if_absent else {}
        # Parts go up as views of the caller's buffers (see s3_parts.py), which stay
        # unchanged until write returns: no part buffers, whatever the concurrency.
        bodies = cut_parts(parts, self._config["part_size"])
        first = next(bodies, [])
        second = next(bodies, None)
        if second is None:
            self._put(key, PartBody(first), conditional)
        else:
            self._multipart(key, itertools.chain([first, second], bodies), conditional)

    def _put(self, key: str, body: PartBody, conditional: dict[str, str]) -> None:
        # with other checksum settings the client adds checksum headers: leave it to them
        c = self._config
        direct = self._direct if c["direct_puts"] and c["checksums"] == "when_required" else None
        if direct is not None:
            headers = {"If-None-Match": "*"} if conditional else {}

            def put() -> bool | None:
                body.seek(0)
                return direct.put(key, body, headers)

            if self._with_stream_retries(put, key, "writing"):
                self.stats.record("writes", bytes_written=len(body))
                return
            body.seek(0)
        self._call(
            lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=body, **conditional),
            key,
        )
        self.stats.record("writes", bytes_written=len(body))

    def _multipart(
        self, key: str, parts: Iterator[list[Piece]], conditional: dict[str, str]
    ) -> None:
        client, concurrency = self._client, self._config["concurrency"]
        upload_id = self._call(
            lambda: client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"], key
        )
        self.stats.record("writes")
        in_flight: set[Future] = set()
        done: list[dict[str, Any]] = []

        def upload(number: int, pieces: list[Piece]) -> dict[str, Any]:
            body = PartBody(pieces)
            response = self._call(
                lambda: client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
                ),
                key,
            )
            self.stats.record("writes", bytes_written=len(body))
            return {"PartNumber": number, "ETag": response["ETag"]}

        try:
            # the next part goes as soon as any part is done: a slow part (a retry, a slow
            # server node) does not hold back the ones behind it
            for number, pieces in enumerate(parts, 1):
                if len(in_flight) >= concurrency:
                    finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    done.extend(future.result() for future in finished)
                in_flight.add(self._uploads.submit(upload, number, pieces))
            while in_flight:
                finished, in_flight = wait(in_flight, return_when=FIRST_EXCEPTION)
                done.extend(future.result() for future in finished)
            done.sort(key=lambda part: part["PartNumber"])
            self._call(
                lambda: client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": done},
                    **conditional,
                ),
                key,
            )
            self.stats.record("writes")
        except BaseException:
            self._abort(key, upload_id, in_flight)
            raise

    def _abort(self, key: str, upload_id: str, in_flight: Iterable[Future]) -> None:
        """Abort a multipart upload once its in-flight parts have stopped (no orphan parts)."""
        for future in in_flight:
            future.cancel()
        for future in in_flight:
            if not future.cancelled():
                try:
                    future.result()
                except Exception:
                    pass
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            self.stats.record("writes")
        except Exception:  # the original failure matters more than a failed abort
            pass

    def copy_with_tail(self, src: str, dst: str, keep: int, tail: Buffer) -> None:
        """Server-side: the kept bytes are copied as UploadPartCopy ranges, only ``tail``
        travels. Objects too small for multipart parts (5 MiB) go through the client."""
        validate_key(src)
        validate_key(dst)
        if keep < _MIN_PART:
            super().copy_with_tail(src, dst, keep, tail)
            return
        client = self._client
        upload_id = self._call(
            lambda: client.create_multipart_upload(Bucket=self.bucket, Key=dst)["UploadId"], dst
        )
        self.stats.record("writes")
        count = -(-keep // _COPY_PART)
        bounds = [keep * i // count for i in range(count + 1)]
        futures: list[Future] = []

        def copy_part(number: int) -> dict[str, Any]:
            start, end = bounds[number - 1], bounds[number]
            response = self._call(
                lambda: client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=dst,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": src},
                    CopySourceRange=f"bytes={start}-{end - 1}",
                ),
                src,
            )
            self.stats.record("copies")
            return {"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]}

        try:
            futures = [self._uploads.submit(copy_part, n) for n in range(1, count + 1)]
            last = self._call(
                lambda: client.upload_part(
                    Bucket=self.bucket,
                    Key=dst,
                    UploadId=upload_id,
                    PartNumber=count + 1,
                    Body=bytes(tail),
                ),
                dst,
            )
            self.stats.record("writes", bytes_written=len(tail))
            parts = [f.result() for f in futures]
            parts.append({"PartNumber": count + 1, "ETag": last["ETag"]})
            self._call(
                lambda: client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=dst,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                ),
                dst,
            )
            self.stats.record("writes")
        except BaseException:
            self._abort(dst, upload_id, futures)
            raise

    def delete(self, key: str) -> None:
        self.head(key)  # S3 deletes missing keys silently; the protocol reports them
        self._call(lambda: self._client.delete_object(Bucket=self.bucket, Key=key), key)
        self.stats.record("deletes")

    def delete_many(self, keys: Iterable[str]) -> None:
        batch: list[str] = []
        for key in keys:
            batch.append(validate_key(key))
            if len(batch) == 1000:  # DeleteObjects' limit
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, keys: list[str]) -> None:
        response = self._call(
            lambda: self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
            ),
            keys[0],
        )
        self.stats.record("deletes")
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise BackendError(
                f"deleting {len(errors)} of {len(keys)} objects failed, e.g. "
                f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
            )

    def _pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages: through a presigned URL where ``presigned_reads`` allows and it
        can answer (see s3_direct.py), else through the client."""
        gets = self._direct if self._config["presigned_reads"] else None
        params = dict(kwargs)
        while True:

            def page() -> dict[str, Any]:
                found = gets.list_page(params) if gets is not None else None
                if found is None:
                    found = self._client.list_objects_v2(Bucket=self.bucket, **params)
                return found

            result = self._with_stream_retries(page, kwargs.get("Prefix", ""))
            self.stats.record("lists")
            yield result
            token = result.get("NextContinuationToken")
            if not result.get("IsTruncated") or not token:
                return
            params["ContinuationToken"] = token

    def list(self, prefix: str = "") -> Iterator[str]:
        # Some services (SeaweedFS) list in their own tree order rather than S3's key order.
        keys = [
            item["Key"] for page in self._pages(Prefix=prefix) for item in page.get("Contents", ())
        ]
        keys.sort(key=lambda k: k.encode("utf-8", "surrogatepass"))
        yield from keys

    def has_prefix(self, prefix: str) -> bool:
        page = next(self._pages(Prefix=prefix, MaxKeys=1), {})
        return bool(page.get("Contents"))

    def list_dir(self, prefix: str = "") -> tuple[list[str], list[str]]:
        keys, prefixes = [], []
        for page in self._pages(Prefix=prefix, Delimiter="/"):
            keys.extend(item["Key"] for item in page.get("Contents", ()))
            prefixes.extend(p["Prefix"] for p in page.get("CommonPrefixes", ()))
        return keys, prefixes

    def head(self, key: str) -> ObjectStat:
        validate_key(key)
        response = self._call(lambda: self._client.head_object(Bucket=self.bucket, Key=key), key)
        self.stats.record("heads")
        return ObjectStat(key, int(response["ContentLength"]), dict(response.get("Metadata", {})))

    def copy(self, src: str, dst: str) -> None:
        from boto3.s3.transfer import TransferConfig

        validate_key(src)
        validate_key(dst)
        config = TransferConfig(
            multipart_threshold=1 << 30,  # CopyObject up to 1 GiB, multipart copy past it
            multipart_chunksize=256 << 20,
            max_concurrency=self._config["concurrency"],
        )
        self._call(
            lambda: self._client.copy(
                {"Bucket": self.bucket, "Key": src}, self.bucket, dst, Config=config
            ),
            src,
        )
        self.stats.record("copies")


def _code(error: BaseException) -> str:
    response = getattr(error, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    if code:
        return str(code)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(status) if status else ""


def _read_body_into(body: Any, out: memoryview) -> int:
    """Stream a response body into ``out``: straight from the socket where the body is plain
    (urllib3's own readinto reads into a temporary bytes object and copies it, which costs a
    copy and, for a fresh 8 MiB temporary each time, page faults on every byte)."""
    raw = getattr(body, "_raw_stream", None)  # urllib3's HTTPResponse
    fp = getattr(raw, "_fp", None)  # http.client's HTTPResponse under it
    if fp is None or raw.headers.get("content-encoding", "identity") != "identity":
        return _read_body_via_urllib3(body, out)
    done = 0
    while done < len(out):
        n = fp.readinto(out[done:])
        if not n:
            break
        done += n
    return done


def _release(body: Any) -> None:
    """Give a response's connection back to the pool once its body is read to the end; close
    it instead if bytes are left unread (an error mid-body, a longer body than asked for)."""
    raw = getattr(body, "_raw_stream", None)
    if raw is None:
        return
    fp = getattr(raw, "_fp", None)
    if fp is not None and not fp.isclosed():
        raw.close()
    raw.release_conn()


def _read_body_via_urllib3(body: Any, out: memoryview) -> int:
    raw = getattr(body, "_raw_stream", None)
    readinto = getattr(raw, "readinto", None)
    done = 0
    while done < len(out):
        if readinto is not None:
            n = readinto(out[done:])
        else:
            data = body.read(len(out) - done)
            n = len(data)
            out[done : done + n] = data
        if not n:
            break
        done += n
    return done


def from_url(url: str, options: dict[str, Any]) -> tuple[S3Backend, str]:
    """``s3://bucket/prefix``; consumes the S3 options named in S3Backend's docstring."""
    rest = url[len("s3://") :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"S3 URLs name a bucket: s3://bucket/prefix, not {url!r}")
    names = (
        "endpoint_url", "profile", "region", "anon", "session", "path_style", "checksums",
        "payload_signing", "presigned_reads", "direct_puts", "retries", "connect_timeout",
        "read_timeout", "part_size", "create_bucket",
    )  # fmt: skip
    kwargs = {name: options.pop(name) for name in names if name in options}
    # shared with the store, which takes them: not popped
    kwargs["concurrency"] = options.get("concurrency", S3Backend.transfer_defaults["concurrency"])
    kwargs["page_concurrency"] = options.get("page_concurrency")
    return S3Backend(bucket, **kwargs), prefix.strip("/")
