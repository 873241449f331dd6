"""S3 requests without botocore's per-call machinery: GetObject, ListObjectsV2, PutObject.

A boto3 client call spends one to two milliseconds of CPU on parameter validation, endpoint
rules, event hooks, signing and response parsing: on a small object or a ranged read that is
most of the client's work. ``DirectRequests`` sends plain requests through the client's own
HTTP session instead, so the connection pool, proxies, TLS settings and timeouts are boto3's,
and signs them with botocore's own SigV4 signers and the client's credentials. Without a
proxy, requests go straight to the urllib3 connection pool the session keeps for the
endpoint: the session's own ``send`` spent a quarter of a small GET's CPU finding that pool
again (parsing a 300-character signed URL) and wrapping the response.

GETs go to presigned URLs: one GetObject URL per key (query-string SigV4; the ``Range`` header
needs no signature), kept for a few minutes. The client signs one probe URL; later keys are
signed by botocore's query-string signer on the probe URL's base (``_KeySigner``), which skips
the client's parameter validation, endpoint rules and hooks: half the cost of signing a key.
PUTs of whole objects are signed in their headers, as the client signs them, body hash
included where the client's ``payload_signing_enabled`` asks for it.

It answers what it is sure of — a 200/206 body, a stored PUT, ``NoSuchKey`` (404),
``InvalidRange`` (416), a failed precondition (412), and throttling or server errors (429,
5xx: ``TransientResponse``, for the caller's retries) — and returns None for everything else
(403 from expired credentials, redirects), for the caller to repeat the request through the
client, which refreshes credentials, follows region redirects and words the error. Signed URLs
are bearer tokens: errors raised here never contain one.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .s3_listing import parse_listing

__all__ = ["DirectRequests", "TransientResponse"]

# A signed URL is valid for _LIFETIME seconds and reused for _REUSE of them, so a request
# sent just before the reuse window ends still arrives well inside its validity.
_LIFETIME = 900
_REUSE = 600
_MAX_URLS = 10_000
_ERROR_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")
_PROBE_KEY = "ccstore-presign-probe"
_SIGV4_QUERY = {
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
}


_TRANSIENT = {429, 500, 502, 503, 504}
_ORIGIN = re.compile(r"^https?://[^/?#]+")


class TransientResponse(Exception):
    """A throttling or server error answered a presigned GET: worth retrying."""

    def __init__(self, code: str, status: int) -> None:
        super().__init__(f"{code} (HTTP {status})")


@dataclass(frozen=True)
class _KeySigner:
    """Signs GetObject URLs of one bucket as the client's ``generate_presigned_url`` does:
    the same URL (base + key quoted as botocore quotes S3 keys), signer, credentials, region."""

    client: Any
    base: str
    region: str
    service: str

    @classmethod
    def for_bucket(cls, client: Any, bucket: str) -> _KeySigner | None:
        """None unless the client's URL for a probe key is a plain SigV4 query URL whose key
        ends its path (anything else, e.g. unsigned or extra parameters: sign through it)."""
        probe = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": _PROBE_KEY}, ExpiresIn=_LIFETIME
        )
        base, _, query = probe.partition("?")
        params = dict(parse_qsl(query))
        scope = params.get("X-Amz-Credential", "").split("/")
        signer = getattr(client, "_request_signer", None)
        if (
            not base.endswith("/" + _PROBE_KEY)
            or params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256"
            or set(params) - {"X-Amz-Security-Token"} != _SIGV4_QUERY
            or len(scope) != 5
            or getattr(signer, "_credentials", None) is None
        ):
            return None
        return cls(client, base[: -len(_PROBE_KEY)], scope[2], scope[3])

    def url(self, key: str) -> str:
        from botocore.auth import S3SigV4QueryAuth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest("GET", self._object_url(key))
        S3SigV4QueryAuth(self._credentials(), self.service, self.region, _LIFETIME).add_auth(
            request
        )
        return request.url

    def put(self, key: str, body: Any, headers: dict[str, str]) -> Any:
        """A PutObject request of ``body`` (file-like, sized) signed in its headers, with
        the body's SHA-256 where the client's config asks for payload signing."""
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest("PUT", self._object_url(key), dict(headers), body, stream_output=True)
        # the signer reads payload_signing_enabled from the client's config, as for its calls
        request.context["client_config"] = self.client.meta.config
        S3SigV4Auth(self._credentials(), self.service, self.region).add_auth(request)
        return request.prepare()

    def _object_url(self, key: str) -> str:
        from botocore.utils import percent_encode

        return self.base + percent_encode(key, safe="/~")

    def _credentials(self) -> Any:
        return self.client._request_signer._credentials.get_frozen_credentials()


class DirectRequests:
    """Requests for objects in ``bucket`` through ``client``'s HTTP session: GETs to cached
    presigned URLs, listings, and header-signed PUTs."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._session = client._endpoint.http_session
        self._bucket = bucket
        self._urls: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._signer = _KeySigner.for_bucket(client, bucket)
        self._pools: dict[str, Any] = {}  # origin -> urllib3 pool, or None: use the session

    @classmethod
    def for_client(cls, client: Any, bucket: str) -> DirectRequests | None:
        """None if this botocore does not expose its HTTP session the way it is used here."""
        endpoint = getattr(client, "_endpoint", None)
        if not hasattr(getattr(endpoint, "http_session", None), "send"):
            return None
        return cls(client, bucket)

    def _url(self, key: str) -> str:
        now = time.monotonic()
        cached = self._urls.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        if self._signer is not None:
            url = self._signer.url(key)
        else:
            url = self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=_LIFETIME
            )
        with self._lock:
            if len(self._urls) >= _MAX_URLS:
                self._urls.clear()
            self._urls[key] = (url, now + _REUSE)
        return url

    def forget(self, key: str) -> None:
        self._urls.pop(key, None)

    def _send(self, method: str, url: str, headers: Any, body: Any = None, *, what: str) -> Any:
        """urllib3's response (body unread) to one request, sent as the session sends it."""
        import urllib3.exceptions
        from botocore.awsrequest import AWSPreparedRequest
        from botocore.exceptions import BotoCoreError

        origin = _ORIGIN.match(url)
        pool = self._pool(origin.group()) if origin else None
        try:
            if pool is not None:
                try:
                    return pool.urlopen(
                        method,
                        url[origin.end() :] or "/",
                        body=body,
                        headers=headers,
                        retries=False,
                        assert_same_host=False,
                        preload_content=False,
                        decode_content=False,
                    )
                except urllib3.exceptions.ClosedPoolError:
                    # the session's pool manager dropped and closed this pool (it keeps a few
                    # hosts; urllib3 1.x closes what it drops) before anything was sent: send
                    # through the session, which opens a new pool for the host
                    self._pools.pop(origin.group(), None)
            request = AWSPreparedRequest(method, url, headers, body, True)
            return self._session.send(request).raw
        except (BotoCoreError, urllib3.exceptions.HTTPError) as e:
            # the libraries' messages quote the URL, signature included
            raise ConnectionError(f"{what} failed: {type(e).__name__}") from None

    def _pool(self, origin: str) -> Any:
        """The session's urllib3 pool for ``origin``, set up as the session sets it up for
        each request; None where a proxy applies or this botocore keeps its pools otherwise."""
        if origin not in self._pools:
            session, url = self._session, origin + "/"
            try:
                if session._proxy_config.proxy_url_for(url):
                    pool = None
                else:
                    pool = session._get_connection_manager(url, None).connection_from_url(url)
                    session._setup_ssl_cert(pool, url, session._verify)
            except AttributeError:
                pool = None
            self._pools[origin] = pool
        return self._pools[origin]

    def list_page(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """One ListObjectsV2 page as the client returns it (``Contents`` keys,
        ``CommonPrefixes``, ``IsTruncated``, ``NextContinuationToken``), or None: ask the
        client. Parsed by s3_listing, in a small part of botocore's time."""
        url = self._client.generate_presigned_url(
            "list_objects_v2",
            Params={"Bucket": self._bucket, "EncodingType": "url", **params},
            ExpiresIn=_LIFETIME,
        )
        response = self._send("GET", url, {}, what=f"listing {params.get('Prefix', '')!r}")
        document = response.read()
        response.release_conn()
        if response.status != 200:
            _lasting_error_code(document, response.status)  # or TransientResponse
            return None
        return parse_listing(document)

    def get(self, key: str, range_header: str | None) -> dict[str, Any] | None:
        """``{"Body": StreamingBody, "ContentLength": n}`` as ``get_object`` returns it, a
        ClientError for a missing key or an unsatisfiable range, or None: ask the client."""
        from botocore.response import StreamingBody

        headers = {"Range": range_header} if range_header else {}
        response = self._send("GET", self._url(key), headers, what=f"GET of {key!r}")
        status = response.status
        if status in (200, 206):
            length = int(response.headers.get("content-length", 0))
            return {"Body": StreamingBody(response, length), "ContentLength": length}
        document = response.read(1 << 16)
        response.release_conn()
        code = _lasting_error_code(document, status)
        if status in (404, 416):
            raise _client_error(code, status, "GetObject")
        self.forget(key)
        return None

    def put(self, key: str, body: Any, headers: dict[str, str]) -> bool | None:
        """PutObject of ``body`` (file-like, sized, at its start) with extra ``headers``
        (e.g. ``If-None-Match``): True once stored, a ClientError for a failed precondition,
        or None: ask the client (rewind the body first)."""
        if self._signer is None:
            return None
        request = self._signer.put(key, body, headers)
        response = self._send(
            "PUT", request.url, request.headers, request.body, what=f"PUT of {key!r}"
        )
        document = response.read(1 << 16)
        response.release_conn()
        status = response.status
        if status == 200:
            return True
        code = _lasting_error_code(document, status)
        if status == 412 or code == "ConditionalRequestConflict":  # 409: lost to a concurrent write
            raise _client_error(code, status, "PutObject")
        return None


def _lasting_error_code(document: bytes, status: int) -> str:
    """The S3 error code an error response's body names, else its HTTP status; throttling and
    server errors raise TransientResponse, for the caller's retries."""
    match = _ERROR_CODE.search(document)
    code = match.group(1).decode("ascii", "replace") if match else str(status)
    if status in _TRANSIENT:
        raise TransientResponse(code, status)
    return code


def _client_error(code: str, status: int, operation: str) -> Exception:
    """The ClientError boto3 raises for this error response, for the caller's error mapping."""
    from botocore.exceptions import ClientError

    error = {"Code": code, "Message": f"HTTP {status}"}
    return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)
