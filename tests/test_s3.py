"""S3 backend behaviour beyond the shared conformance suite, against every real S3 server."""

from __future__ import annotations

import contextlib
import hashlib
import pickle
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import S3_SERVERS, make_s3_backend

import ccstore
from ccstore import BackendError
from ccstore.backends.base import RangeByteRequest
from ccstore.backends.memory import MemoryBackend
from ccstore.backends.s3 import S3Backend
from ccstore.backends.s3_parts import GATHER_BYTES
from ccstore.pages import PAGE_BYTES


@pytest.fixture(params=S3_SERVERS)
def endpoint(request, s3_servers):
    return s3_servers.endpoint(request.param)


@pytest.fixture
def backend(endpoint):
    return make_s3_backend(endpoint)


def _uploads_in_progress(backend: S3Backend) -> list:
    response = backend._client.list_multipart_uploads(Bucket=backend.bucket)
    return response.get("Uploads", [])


def test_listing_past_1000_keys_paginates(backend):
    keys = [f"many/{i:05d}" for i in range(1105)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: backend.write(k, [b"x"]), keys))
    before = backend.stats.snapshot()
    assert list(backend.list("many/")) == keys
    assert (backend.stats.snapshot() - before).lists == 2
    assert len(backend.list_dir("many/")[0]) == 1105
    backend.delete_many(keys)  # two DeleteObjects batches
    assert list(backend.list("many/")) == []


def test_multipart_write_streams_parts_and_reads_back(endpoint):
    backend = make_s3_backend(endpoint, part_size=5 << 20, concurrency=3)
    parts = [bytes([i]) * (1 << 20) for i in range(23)]  # 23 MiB -> 5 parts
    before = backend.stats.snapshot()
    backend.write("big", iter(parts))
    cost = backend.stats.snapshot() - before
    assert cost.writes == 1 + 5 + 1  # initiate, parts, complete
    assert cost.bytes_written == 23 << 20
    assert backend.head("big").size == 23 << 20
    assert backend.read(
        "big", ccstore.backends.RangeByteRequest((22 << 20) - 1, (22 << 20) + 2)
    ) == (b"\x15\x16\x16")


def test_multipart_parts_are_filled_across_uneven_pieces(endpoint):
    # pieces straddle part boundaries, one spans several parts, and come as other buffers
    backend = make_s3_backend(endpoint, part_size=5 << 20, concurrency=2)
    rng = np.random.default_rng(7)
    pieces = [
        rng.bytes(3 << 20),
        memoryview(rng.bytes((3 << 20) + 1)),
        rng.integers(0, 2**31, (13 << 20) // 4, dtype="<i4"),  # 13 MiB: parts 2 to 4
        bytearray(rng.bytes(12345)),
        b"",
        rng.bytes(7),
    ]
    # and 2-d blocks of rows inside larger arrays, whose rows straddle part boundaries
    whole = rng.integers(0, 256, (2000, 3003), dtype=np.uint8)
    pieces += [memoryview(whole[1:1900, 2:3001]), memoryview(whole[5:7, :1])]
    expected = b"".join(
        p.tobytes() if isinstance(p, memoryview) and p.ndim == 2 else memoryview(p).cast("B")
        for p in pieces
    )
    assert len(expected) == (19 << 20) + 12353 + 1899 * 2999 + 2
    before = backend.stats.snapshot()
    backend.write("uneven", iter(pieces))
    cost = backend.stats.snapshot() - before
    assert cost.writes == 1 + 5 + 1  # 24.4 MiB -> 4 full parts and a short one
    assert backend.read("uneven") == expected
    # an object smaller than a part goes up in one PUT, blocks included
    small = [b"head", memoryview(whole[:3, 7:12]), memoryview(whole[10:12, :2])]
    backend.write("small", iter(small))
    assert backend.read("small") == b"head" + whole[:3, 7:12].tobytes() + whole[10:12, :2].tobytes()


def test_uncompressed_chunks_go_up_uncopied_and_store_the_same_bytes(endpoint):
    # S3 takes a square chunk's rows straight from the array (writes_blocks): the object
    # must be byte for byte the one a backend taking contiguous chunks stores.
    backend = make_s3_backend(endpoint, part_size=5 << 20, concurrency=2)
    assert backend.writes_blocks and not MemoryBackend.writes_blocks
    a = np.random.default_rng(3).standard_normal((1536, 1000), dtype=np.float32)
    for layout in (a, np.asfortranarray(a), a[:, ::2]):  # C, F, and not contiguous
        ccstore.Store(backend, "s3").put("a", layout, chunks=(512, 300))
        memory = ccstore.open("memory://")
        memory.put("a", layout, chunks=(512, 300))
        assert backend.read("s3/a") == memory.backend.read("a")
        assert ccstore.Store(backend, "s3").load("a").tobytes() == np.asarray(layout).tobytes()


def test_copy_with_tail_copies_server_side(endpoint):
    backend = make_s3_backend(endpoint, part_size=5 << 20)
    body = bytes(range(256)) * (48 << 12)  # 12 MiB
    backend.write("enc", [body])
    before = backend.stats.snapshot()
    backend.copy_with_tail("enc", "enc", 11 << 20, b"re-keyed tail")
    cost = backend.stats.snapshot() - before
    assert cost.bytes_read == 0 and cost.bytes_written == len(b"re-keyed tail")
    assert cost.copies == 1  # one UploadPartCopy for 11 MiB
    assert backend.read("enc") == body[: 11 << 20] + b"re-keyed tail"
    assert _uploads_in_progress(backend) == []


def test_failed_multipart_write_aborts_and_keeps_old_value(endpoint):
    backend = make_s3_backend(endpoint, part_size=5 << 20)
    backend.write("k", [b"old value"])

    def failing():
        for _ in range(12):
            yield b"\x00" * (1 << 20)
        raise RuntimeError("encoder crashed mid-write")

    with pytest.raises(RuntimeError, match="encoder crashed"):
        backend.write("k", failing())
    assert backend.read("k") == b"old value"
    assert _uploads_in_progress(backend) == []
    assert list(backend.list("")) == ["k"]


def test_interrupted_store_write_leaves_no_upload(endpoint):
    store = ccstore.Store(make_s3_backend(endpoint, part_size=5 << 20), "p")
    store["a"] = np.zeros(10)
    calls = []

    def interrupt(done, total):
        calls.append(done)
        if done > 12 << 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.put("a", np.ones((64, 1 << 16), "f4"), chunks=(4, 1 << 16), progress=interrupt)
    np.testing.assert_array_equal(store.load("a"), np.zeros(10))
    assert _uploads_in_progress(store.backend) == []


def test_missing_bucket_is_a_clear_error(endpoint):
    backend = S3Backend(
        "no-such-bucket-here", endpoint_url=endpoint.endpoint_url, region=endpoint.region
    )
    # Probe with a read: SeaweedFS creates buckets on PUT by itself.
    with pytest.raises(
        BackendError, match=r"bucket 'no-such-bucket-here' does not exist.*create_bucket=True"
    ):
        backend.read("k")
    assert not list_buckets_contains(endpoint, "no-such-bucket-here")


def list_buckets_contains(endpoint, name):
    return any(b["Name"] == name for b in endpoint.client().list_buckets().get("Buckets", []))


def test_bucket_created_only_when_asked(endpoint):
    S3Backend(
        "made-on-request",
        endpoint_url=endpoint.endpoint_url,
        region=endpoint.region,
        create_bucket=True,
    )
    assert list_buckets_contains(endpoint, "made-on-request")


def test_credentials_never_in_url_repr_or_pickle(endpoint):
    import boto3

    secret = "not-a-real-secret-0123456789abcdef"
    session = boto3.Session(
        aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key=secret, region_name="us-east-1"
    )
    backend = S3Backend("b", endpoint_url=endpoint.endpoint_url, session=session)
    store = ccstore.Store(backend, "x")
    for text in (store.url, repr(store), repr(backend)):
        assert secret not in text and "AKIAEXAMPLE" not in text
    assert secret.encode() not in pickle.dumps(store)


ODD_KEYS = ["k", "a b/c+d~\u00e9%", "x?y#z&=", "dir/sub/leaf.npy", "\u6570\u636e/*.npy", "-_.!'()"]


@pytest.mark.parametrize(
    ("endpoint_url", "region", "token"),
    [
        ("http://127.0.0.1:9000", "us-east-1", None),  # path style, as on Ceph, MinIO
        (None, "eu-west-1", None),  # AWS, virtual-hosted
        (None, "us-east-2", "session-token/with+odd=chars"),  # temporary credentials
    ],
)
def test_key_signer_makes_the_clients_own_presigned_urls(endpoint_url, region, token):
    # Offline: signing needs no server. Whenever both URLs carry the same X-Amz-Date they
    # must be identical, signature included.
    import boto3

    from ccstore.backends.s3_direct import _KeySigner

    session = boto3.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", aws_session_token=token
    )
    backend = S3Backend("bucket", endpoint_url=endpoint_url, region=region, session=session)
    client = backend._client
    signer = _KeySigner.for_bucket(client, "bucket")
    assert signer is not None
    for key in ODD_KEYS:
        for _ in range(5):
            ours = signer.url(key)
            theirs = client.generate_presigned_url(
                "get_object", Params={"Bucket": "bucket", "Key": key}, ExpiresIn=900
            )
            if ours.split("X-Amz-Date=")[1][:16] == theirs.split("X-Amz-Date=")[1][:16]:
                break
        assert ours == theirs


def test_key_signer_is_not_used_for_unsigned_requests():
    from ccstore.backends.s3_direct import _KeySigner

    client = S3Backend("bucket", region="us-east-1", anon=True)._client
    assert _KeySigner.for_bucket(client, "bucket") is None


def test_store_and_lazy_array_pickle_rebuild_client(backend):
    store = ccstore.Store(backend, "pk")
    array = np.arange(5000, dtype="i4").reshape(50, 100)
    store.put("a", array, chunks=(10, 50))
    clone = pickle.loads(pickle.dumps(store["a"]))
    assert clone._store.backend._client_instance is None
    np.testing.assert_array_equal(clone[12:37, 60], array[12:37, 60])


def test_open_s3_url_with_options(endpoint):
    backend = make_s3_backend(endpoint)
    store = ccstore.open(
        f"s3://{backend.bucket}/some/prefix",
        endpoint_url=endpoint.endpoint_url,
        region=endpoint.region,
        concurrency=4,
        compression="zstd",
    )
    store["k"] = {"v": 1}
    assert store.url == f"s3://{backend.bucket}/some/prefix"
    assert list(backend.list("")) == ["some/prefix/k"]
    assert store.backend._config["concurrency"] == 4
    with pytest.raises(TypeError, match="unknown option"):
        ccstore.open("s3://b", endpoint_url=endpoint.endpoint_url, bogus=1)


def test_page_reads_in_flight_have_a_pooled_connection_each(backend, caplog):
    """32 page reads go at once beside the store's other requests: the connection pool keeps
    a connection for each, and none is opened and dropped ("Connection pool is full")."""
    store = ccstore.Store(backend, "pages", ccstore.StoreOptions(coalesce_gap=0))
    assert (store.options.concurrency, store.options.page_concurrency) == (8, 32)
    assert backend._client.meta.config.max_pool_connections == 8 + 32
    array = np.random.default_rng(5).standard_normal((2048, 2048), dtype=np.float32)
    store.put("a", array, chunks=(256, 256))  # 64 chunks of 4 pages
    rows, cols = np.random.default_rng(6).integers(0, 2048, (2, 50))
    x = store["a"]
    before = store.stats.snapshot()
    with caplog.at_level("WARNING", logger="urllib3"):
        np.testing.assert_array_equal(x[rows, cols], array[rows, cols])
    assert (store.stats.snapshot() - before).reads > 32  # 34: most of them one page
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_backends_with_the_same_settings_share_one_client(endpoint):
    first = make_s3_backend(endpoint)
    twin = pickle.loads(pickle.dumps(first))
    assert twin._client is first._client
    other = S3Backend(first.bucket, endpoint_url=endpoint.endpoint_url, region=endpoint.region,
                      concurrency=3)  # fmt: skip
    assert other._client is not first._client
    twin.write("shared", [b"one client"])
    assert first.read("shared") == b"one client"


def _shared_clients() -> int:
    from ccstore.backends import s3

    return len(s3._CLIENTS)


def test_forked_child_does_not_inherit_shared_clients(backend):
    import multiprocessing

    from ccstore.backends import s3

    assert backend._client is not None and s3._CLIENTS
    # the child only looks: the parent's pooled connections must not be reused there
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_shared_clients) == 0


@pytest.mark.parametrize(
    ("url", "option", "signed"),
    [
        ("https://s3.example.org", None, False),
        ("HTTPS://s3.example.org", None, False),
        ("http://127.0.0.1:9000", None, True),
        ("http://127.0.0.1:9000", False, False),
        ("https://s3.example.org", True, True),
        (None, None, False),  # AWS: https
    ],
)
def test_payload_signing_defaults_to_plain_http_only(url, option, signed):
    backend = S3Backend("b", endpoint_url=url, region="us-east-1", payload_signing=option)
    assert backend._client.meta.config.s3["payload_signing_enabled"] is signed


def test_part_size_below_s3_minimum_refused():
    with pytest.raises(ValueError, match="at least 5 MiB"):
        S3Backend("b", part_size=1 << 20)


@contextlib.contextmanager
def _header_of_puts(proxy, name: str) -> Iterator[list[str]]:
    """Record header ``name`` ("" when absent) of every PUT through ``proxy`` in the block."""
    seen: list[str] = []

    def record(request) -> bool:
        if request.method == "PUT":
            headers = {k.lower(): v for k, v in request.headers.items()}
            seen.append(headers.get(name, ""))
        return False

    proxy.fail_next(1, match=record)  # never matches: only records
    try:
        yield seen
    finally:
        proxy.clear_faults()


class TestThroughFaultProxy:
    """Real server behind tests/faultproxy.py: retries, aborts and bytes on the wire."""

    @pytest.fixture
    def proxied(self, endpoint):
        from faultproxy import FaultProxy

        direct = make_s3_backend(endpoint)
        with FaultProxy(endpoint.endpoint_url, timeout=10) as proxy:

            def backend(**options):
                return S3Backend(
                    direct.bucket, endpoint_url=proxy.url, region=endpoint.region, **options
                )

            yield proxy, backend, direct

    @pytest.mark.parametrize("kind", ["503", "500", "reset", "truncate"])
    def test_transient_read_faults_are_retried(self, proxied, kind):
        proxy, backend, direct = proxied
        data = bytes(range(256)) * 4096  # 1 MiB
        direct.write("k", [data])
        s3 = backend(retries=4)
        proxy.fail_next(2, kind, match=lambda r: r.method == "GET")
        buffer = bytearray(len(data) - 100)
        assert s3.read_into("k", 100, memoryview(buffer)) == len(data) - 100
        assert bytes(buffer) == data[100:]
        assert proxy.pending_faults == 0
        assert proxy.stats.snapshot().faults == 2

    def test_array_read_cut_mid_body_starts_over_with_fresh_checksums(self, proxied):
        # Chunks stream into strided blocks of the result with their CRCs taken on the way;
        # a body cut short is read again from its start, and the CRCs must start over too.
        proxy, backend, _ = proxied
        store = ccstore.Store(backend(retries=4), "cut")
        a = np.arange(512 * 512, dtype="<f4").reshape(512, 512)
        store.put("a", a, chunks=(128, 128))  # 16 chunks of 64 KiB, rows of 512 bytes

        def span_read(request) -> bool:  # not the read of the header at the object's end
            ranges = [v for k, v in request.headers.items() if k.lower() == "range"]
            return request.method == "GET" and bool(ranges) and not ranges[0].startswith("bytes=-")

        proxy.fail_next(1, "truncate", match=span_read)
        got = store.load("a")
        assert got.tobytes() == a.tobytes()
        assert proxy.pending_faults == 0 and proxy.stats.snapshot().faults == 1

    @pytest.mark.parametrize("kind", ["503", "500", "reset"])
    def test_transient_write_faults_are_retried(self, proxied, kind):
        proxy, backend, direct = proxied
        s3 = backend(retries=4)
        proxy.fail_next(2, kind, match=lambda r: r.method == "PUT")
        s3.write("w", [b"payload"])
        assert direct.read("w") == b"payload"
        assert proxy.pending_faults == 0

    @pytest.mark.parametrize("kind", ["500", "reset"])
    def test_parts_sent_again_after_a_fault_are_the_same_bytes(self, proxied, kind):
        # A part's body is views of the caller's buffers; a retry must read it from its
        # start again: part 2 is strided rows (gathered), part 4 one long run (sent as is).
        proxy, backend, direct = proxied
        s3 = backend(retries=4, part_size=5 << 20, read_timeout=10)
        a = np.random.default_rng(5).integers(0, 256, (3000, 4096), dtype=np.uint8)
        retried = lambda r: r.method == "PUT" and r.query.get("partNumber") in (["2"], ["4"])  # noqa: E731
        proxy.fail_next(4, kind, match=retried)
        s3.write("again", [b"head", memoryview(a[:, 100:3000]), memoryview(a)])
        assert direct.read("again") == b"head" + a[:, 100:3000].tobytes() + a.tobytes()
        assert proxy.pending_faults == 0 and proxy.stats.snapshot().faults == 4

    @pytest.mark.parametrize("option", [None, False])
    def test_payload_signing_reaches_the_wire(self, proxied, option):
        proxy, backend, direct = proxied
        with _header_of_puts(proxy, "x-amz-content-sha256") as seen:
            backend(payload_signing=option).write("signed", [b"body"])
        expected = hashlib.sha256(b"body").hexdigest() if option is None else "UNSIGNED-PAYLOAD"
        assert seen == [expected]
        assert direct.read("signed") == b"body"

    def test_ranged_reads_reuse_their_connections(self, proxied):
        # bodies are read past urllib3, so ccstore hands each connection back itself
        proxy, backend, direct = proxied
        data = bytes(range(256)) * 4096
        direct.write("k", [data])
        s3 = backend()
        s3.read_into("k", 0, memoryview(bytearray(10)))  # opens the connection
        before = proxy.stats.snapshot()
        for start in range(0, len(data), 64 << 10):
            buffer = bytearray(64 << 10)
            assert s3.read_into("k", start, memoryview(buffer)) == len(buffer)
            assert buffer == data[start : start + len(buffer)]
        used = proxy.stats.snapshot() - before
        assert (used.requests, used.connections) == (16, 0)

    def test_a_slow_part_does_not_hold_back_the_parts_behind_it(self, proxied):
        # part 1 stalls, then its connection closes and botocore sends it again; meanwhile
        # the other parts go, two at a time, as each one finishes
        proxy, backend, direct = proxied
        s3 = backend(part_size=5 << 20, concurrency=2)
        data = np.random.default_rng(3).bytes((4 * 5 << 20) + 1000)  # 5 parts

        def first_part(request) -> bool:
            return request.method == "PUT" and request.query.get("partNumber") == ["1"]

        proxy.fail_next(1, "stall", match=first_part, stall=3.0)
        s3.write("k", [data])
        parts = [int(r.query["partNumber"][0]) for r in proxy.records if "partNumber" in r.query]
        assert sorted(parts) == [1, 1, 2, 3, 4, 5]
        second_try = [i for i, number in enumerate(parts) if number == 1][1]
        assert second_try > parts.index(5)  # part 1 was sent again after part 5 went
        assert direct.read("k") == data

    def test_uploads_do_not_wait_for_100_continue(self, proxied):
        # botocore asks for "Expect: 100-continue" on file-like bodies: a round trip per put
        proxy, backend, direct = proxied
        s3 = backend(part_size=5 << 20)
        with _header_of_puts(proxy, "expect") as expects:
            s3.write("small", [b"x" * 1000])
            s3.write("large", [bytes(6 << 20)])  # two parts: a full one and the rest
        assert expects == ["", "", ""]
        assert direct.read("small") == b"x" * 1000 and direct.read("large") == bytes(6 << 20)

    def test_reads_use_one_presigned_url_per_key(self, proxied):
        proxy, backend, direct = proxied
        direct.write("k", [bytes(range(256)) * 64])
        s3 = backend()
        assert s3.read_into("k", 10, memoryview(bytearray(100))) == 100
        assert s3.read("k", RangeByteRequest(0, 50)) == bytes(range(50))
        gets = [r for r in proxy.records if r.method == "GET"]
        assert len(gets) == 2 and all("X-Amz-Signature" in r.query for r in gets)
        assert gets[0].query == gets[1].query  # signed once, reused
        plain = backend(presigned_reads=False)
        proxy.records.clear()
        assert plain.read("k", RangeByteRequest(0, 50)) == bytes(range(50))
        assert [("X-Amz-Signature" in r.query) for r in proxy.records] == [False]

    def test_presigned_reads_of_unusual_keys_need_no_second_request(self, proxied):
        # a URL the server refused would be repeated through boto3: two requests, one a 403
        proxy, backend, direct = proxied
        s3 = backend()
        for i, key in enumerate(ODD_KEYS):
            direct.write(key, [f"value {i}".encode()])
            proxy.records.clear()
            assert s3.read(key) == f"value {i}".encode()
            assert [(r.status, "X-Amz-Signature" in r.query) for r in proxy.records] == [
                (200, True)
            ], key

    def test_presigned_listings_match_the_clients_in_one_request_per_page(self, proxied):
        # keys percent-encoded by the server (encoding-type=url) and decoded here as boto3 does
        proxy, backend, direct = proxied
        keys = [f"odd/{key}" for key in ODD_KEYS] + ["odd/sub dir/+x", "odd/sub dir/y%2F"]
        for key in keys:
            direct.write(key, [b"v"])
        s3, plain = backend(), backend(presigned_reads=False)
        proxy.records.clear()
        listed = list(s3.list("odd/"))
        assert [(r.status, "X-Amz-Signature" in r.query) for r in proxy.records] == [(200, True)]
        assert listed == sorted(keys, key=lambda k: k.encode()) == list(plain.list("odd/"))
        assert s3.list_dir("odd/") == plain.list_dir("odd/")
        assert "odd/sub dir/" in s3.list_dir("odd/")[1]
        assert s3.has_prefix("odd/sub dir/+") and not s3.has_prefix("odd/sub dir/z")

    def test_refused_presigned_listing_is_repeated_through_boto3(self, proxied):
        proxy, backend, direct = proxied
        direct.write("k", [b"value"])
        proxy.fail_next(1, "403", match=lambda r: "X-Amz-Signature" in r.query)
        assert list(backend().list("")) == ["k"]
        assert [("X-Amz-Signature" in r.query) for r in list(proxy.records)[-2:]] == [True, False]

    def test_refused_presigned_read_is_repeated_through_boto3(self, proxied):
        # e.g. credentials that expired after the URL was signed: boto3 refreshes them
        proxy, backend, direct = proxied
        direct.write("k", [b"value"])
        s3 = backend()
        proxy.fail_next(1, "403", match=lambda r: "X-Amz-Signature" in r.query)
        assert s3.read("k") == b"value"
        assert [(r.status, "X-Amz-Signature" in r.query) for r in proxy.records] == [
            (403, True),
            (200, False),
        ]

    def test_missing_key_costs_one_presigned_request(self, proxied):
        proxy, backend, _ = proxied
        with pytest.raises(ccstore.KeyNotFoundError, match="'absent'"):
            backend().read("absent")
        assert [(r.method, r.status) for r in proxy.records] == [("GET", 404)]

    # -- single PUTs through DirectRequests (direct_puts) ---------------------------------
    # botocore's client calls carry amz-sdk-request ("attempt=1; max=6"); direct PUTs do not.

    @pytest.mark.parametrize("signing", [True, False])
    def test_small_puts_go_direct_in_one_signed_request(self, proxied, signing):
        proxy, backend, direct = proxied
        s3 = backend(payload_signing=signing)
        value = bytes(range(256)) * 16
        with (
            _header_of_puts(proxy, "amz-sdk-request") as sdk,
            _header_of_puts(proxy, "x-amz-content-sha256") as hashes,
        ):
            s3.write("k", [value[:1000], value[1000:]])
            s3.write("empty", [])
        assert sdk == ["", ""]
        expected = [hashlib.sha256(v).hexdigest() for v in (value, b"")]
        assert hashes == (expected if signing else ["UNSIGNED-PAYLOAD"] * 2)
        assert [(r.method, r.status) for r in proxy.records] == [("PUT", 200)] * 2
        assert direct.read("k") == value and direct.read("empty") == b""

    def test_direct_puts_off_or_other_checksums_go_through_boto3(self, proxied):
        proxy, backend, direct = proxied
        with _header_of_puts(proxy, "amz-sdk-request") as sdk:
            backend(direct_puts=False).write("a", [b"one"])
            backend(checksums="when_supported").write("b", [b"two"])
        assert all(sdk) and len(sdk) == 2
        assert direct.read("a") == b"one" and direct.read("b") == b"two"

    def test_direct_puts_of_unusual_keys_need_no_second_request(self, proxied):
        proxy, backend, direct = proxied
        s3 = backend()
        for i, key in enumerate(ODD_KEYS):
            proxy.records.clear()
            s3.write(key, [f"value {i}".encode()])
            assert [(r.method, r.status) for r in proxy.records] == [("PUT", 200)], key
            assert direct.read(key) == f"value {i}".encode()

    def test_direct_conditional_put_refuses_an_existing_key_in_one_request(self, proxied):
        proxy, backend, direct = proxied
        s3 = backend()
        s3.write("new", [b"first"], if_absent=True)
        proxy.records.clear()
        with pytest.raises(ccstore.KeyExistsError, match="'new'"):
            s3.write("new", [b"second"], if_absent=True)
        assert [(r.method, r.status) for r in proxy.records] == [("PUT", 412)]
        assert direct.read("new") == b"first"

    @pytest.mark.parametrize("kind", ["503", "500", "reset"])
    def test_transient_direct_put_faults_are_retried(self, proxied, kind):
        proxy, backend, direct = proxied
        s3 = backend(retries=4)
        value = bytes(range(256)) * 512
        with _header_of_puts(proxy, "amz-sdk-request") as sdk:  # sees every PUT: first
            proxy.fail_next(2, kind, match=lambda r: r.method == "PUT")
            s3.write("k", [value])
        assert proxy.stats.snapshot().faults == 2 and sdk == [""] * 3
        assert direct.read("k") == value

    def test_refused_direct_put_is_repeated_through_boto3(self, proxied):
        # e.g. credentials that expired after signing: boto3 refreshes them; the body is
        # sent again from its start
        proxy, backend, direct = proxied
        value = bytes(range(256)) * 64
        with _header_of_puts(proxy, "amz-sdk-request") as sdk:
            proxy.fail_next(1, "403", match=lambda r: r.method == "PUT")
            backend().write("k", [value[:10], value[10:]])
        assert [r.status for r in proxy.records] == [403, 200] and sdk[0] == "" and sdk[1]
        assert direct.read("k") == value

    @pytest.mark.parametrize(
        ("kind", "message"),
        [
            ("503", r"S3 request for s3://.*/k failed after retries.*SlowDown"),
            ("reset", r"writing s3://.*/k failed 3 times"),
        ],
    )
    def test_failed_direct_put_gives_a_clear_error_and_keeps_the_old_value(
        self, proxied, kind, message
    ):
        proxy, backend, direct = proxied
        direct.write("k", [b"old"])
        proxy.fail_next(10, kind, match=lambda r: r.method == "PUT")
        with pytest.raises(BackendError, match=message):
            backend(retries=2).write("k", [b"new"])
        assert proxy.stats.snapshot().faults == 3
        assert direct.read("k") == b"old"

    def test_failed_presigned_read_never_shows_the_signed_url(self, proxied):
        import traceback

        proxy, backend, direct = proxied
        direct.write("k", [b"value"])
        s3 = backend(retries=1)
        proxy.fail_next(2, "reset", match=lambda r: r.method == "GET")
        with pytest.raises(BackendError, match="failed 2 times") as info:
            s3.read("k")
        shown = "".join(traceback.format_exception(info.value))
        assert "X-Amz-Signature" not in shown and "X-Amz-Credential" not in shown

    def test_exhausted_retries_raise_a_clear_error(self, proxied):
        proxy, backend, direct = proxied
        direct.write("k", [b"value"])
        s3 = backend(retries=3)
        proxy.fail_next(10, "503", match=lambda r: r.method == "GET")
        with pytest.raises(BackendError, match=r"failed after retries.*SlowDown"):
            s3.read("k")
        assert proxy.stats.snapshot().faults == 4  # the first attempt and three retries
        proxy.fail_next(10, "truncate", match=lambda r: r.method == "GET")
        with pytest.raises(BackendError, match=r"mid-transfer|failed"):
            s3.read_into("k", 0, memoryview(bytearray(5)))

    def test_part_failing_mid_upload_aborts_and_keeps_old_value(self, proxied):
        proxy, backend, direct = proxied
        direct.write("big", [b"old"])
        s3 = backend(retries=2, part_size=5 << 20)
        is_part = lambda r: r.method == "PUT" and "partNumber" in r.query  # noqa: E731
        proxy.fail_next(100, "500", match=lambda r: is_part(r) and r.query["partNumber"] == ["2"])
        with pytest.raises(BackendError, match="failed after retries"):
            s3.write("big", (b"\x01" * (1 << 20) for _ in range(16)))
        assert direct.read("big") == b"old"
        assert _uploads_in_progress(direct) == []

    def test_row_slice_bytes_on_the_wire(self, proxied):
        proxy, backend, direct = proxied
        store = ccstore.Store(direct, "wire")
        array = np.arange(2048 * 2048, dtype="f4").reshape(2048, 2048)
        store.put("a", array, chunks=(256, 512))
        proxied_store = ccstore.Store(backend(), "wire")
        x = proxied_store["a"]
        before = proxy.stats.snapshot()
        np.testing.assert_array_equal(x[1000], array[1000])
        wire = proxy.stats.snapshot() - before
        touched = 4 * PAGE_BYTES  # one page of each of the four chunks in the row band
        assert wire.requests == 4
        assert touched <= wire.bytes_out <= touched + 4 * 1024  # pages and response headers


_READ_WITH_TRACEMALLOC = """
import hashlib, sys, tracemalloc
from ccstore.backends.base import RangeByteRequest
from ccstore.backends.memory import MemoryBackend
from ccstore.backends.s3 import S3Backend
bucket, endpoint, region, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
backend = S3Backend(bucket, endpoint_url=endpoint, region=region)
out = bytearray(size)
backend.read_into("big", 0, memoryview(out)[:10])  # client and connection exist
tracemalloc.start()
assert backend.read_into("big", 0, memoryview(out)) == size
print(tracemalloc.get_traced_memory()[1], hashlib.sha256(out).hexdigest())
"""


def test_ranged_read_into_makes_no_temporary_copy(backend, endpoint):
    # in a child process: moto serves from inside the test process and allocates there too
    import subprocess
    import sys

    data = np.random.default_rng(0).bytes(8 << 20)
    backend.write("big", [data])
    args = [backend.bucket, endpoint.endpoint_url, endpoint.region, str(len(data))]
    result = subprocess.run(
        [sys.executable, "-c", _READ_WITH_TRACEMALLOC, *args], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    peak, digest = result.stdout.split()
    assert digest == hashlib.sha256(data).hexdigest()
    peak = int(peak)
    assert peak < 1 << 20, f"reading 8 MiB allocated {peak / 2**20:.1f} MiB on the way"


def test_server_ignoring_ranges_is_a_clear_error(s3_servers):
    from faultproxy import FaultProxy

    endpoint = s3_servers.endpoint("moto")
    direct = make_s3_backend(endpoint)
    direct._client.put_object(  # readable without a signature, which the Range would need
        Bucket=direct.bucket, Key="whole", Body=bytes(range(100)) * 10, ACL="public-read"
    )
    with FaultProxy(endpoint.endpoint_url, timeout=10) as proxy:
        s3 = S3Backend(direct.bucket, endpoint_url=proxy.url, region=endpoint.region, anon=True)
        assert s3.read_into("whole", 100, memoryview(bytearray(10))) == 10
        proxy.fail_next(1, "ignore_range")
        with pytest.raises(BackendError, match="the server sent 1000: it ignores Range"):
            s3.read_into("whole", 100, memoryview(bytearray(10)))
        buffer = bytearray(10)  # the connection it left was closed, not reused mid-body
        assert s3.read_into("whole", 200, memoryview(buffer)) == 10
        assert buffer == (bytes(range(100)) * 10)[200:210]


_WRITE_WITH_TRACEMALLOC = """
import sys, tracemalloc
import numpy as np
import ccstore
from ccstore.backends.s3 import S3Backend
bucket, endpoint, region = sys.argv[1], sys.argv[2], sys.argv[3]
backend = S3Backend(bucket, endpoint_url=endpoint, region=region, part_size=5 << 20, concurrency=2)
store = ccstore.Store(backend, "", ccstore.StoreOptions(concurrency=2))
a = np.random.default_rng(0).standard_normal((2048, 4096), dtype=np.float32)  # 32 MiB
store.put("warm", a[:4])  # client, connections and worker threads exist
tracemalloc.start()
store.put("big", a, chunks=(1024, 1024))  # 4 MiB chunks of 1024 rows of 4 KiB
print(tracemalloc.get_traced_memory()[1])
"""


def test_uncompressed_upload_holds_no_part_buffers(backend, endpoint):
    # Square chunks go up as views of the array: each part in flight holds only its gather
    # buffer for the 4 KiB rows, nothing part-sized, nothing chunk-sized. In a child
    # process, as moto allocates inside the test process.
    import subprocess
    import sys

    args = [backend.bucket, endpoint.endpoint_url, endpoint.region]
    result = subprocess.run(
        [sys.executable, "-c", _WRITE_WITH_TRACEMALLOC, *args], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    peak = int(result.stdout)
    # two gather buffers (concurrency=2) and CRC scratch; part buffers were 17.7 MiB
    assert peak < 2 * GATHER_BYTES + (1 << 20), f"peak {peak / 2**20:.1f} MiB"
    a = np.random.default_rng(0).standard_normal((2048, 4096), dtype=np.float32)
    assert ccstore.Store(backend).load("big").tobytes() == a.tobytes()


def test_direct_requests_go_through_a_configured_proxy(endpoint, monkeypatch):
    """Direct requests skip the session's per-request work only where no proxy applies: with
    one configured, they go to it (here a closed port), as the client's calls do."""
    backend = make_s3_backend(endpoint)
    backend.write("k", [b"value"])
    assert backend.read("k") == b"value"  # straight to the server, through the direct pool
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    proxied = S3Backend(
        backend.bucket, endpoint_url=endpoint.endpoint_url, region=endpoint.region, retries=0
    )
    with pytest.raises(BackendError, match=r"GET of 'k' failed: Proxy") as caught:
        proxied.read("k")
    assert "Signature" not in str(caught.value)


def test_direct_requests_survive_the_session_dropping_their_pool(endpoint):
    """urllib3's pool manager keeps a few hosts, and urllib3 1.x closes the pools it drops: a
    request on a dropped pool goes through the session instead, which opens a new one."""
    backend = make_s3_backend(endpoint)
    backend.write("k", [b"value"])
    assert backend.read("k") == b"value"
    before = backend.stats.snapshot()
    (pool,) = backend._direct._pools.values()
    backend._client._endpoint.http_session._manager.clear()
    pool.close()  # as urllib3 1.x does to the pools it drops (2.x leaves them to the GC)
    assert backend.read("k") == b"value"
    backend.write("k", [b"other"])
    assert backend.read("k") == b"other"
    assert (backend.stats.snapshot() - before).requests == 3  # no failed attempt retried
