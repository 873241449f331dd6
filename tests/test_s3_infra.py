"""The S3 test infrastructure itself, against every real server the suite can start.

tests/s3_servers.py (servers), tests/faultproxy.py (faults and bytes on the wire) and
tests/cottoncandy_fixtures.py (objects laid out as cottoncandy 0.4.0 writes them), checked with
plain boto3 only, so a failure here points at the infrastructure, not at ccstore. Servers come
from conftest's session-wide ``s3_servers`` (one start per server per session); one that cannot
start here is skipped with its reason, and listed again in the "S3 SERVERS SKIPPED" summary.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import socket
import time
import uuid

import botocore.exceptions
import numpy as np
import pytest
import scipy.sparse as sp
from cottoncandy_fixtures import (
    ACL,
    SPARSE_LAYOUTS,
    dask_parts,
    decode_raw_array,
    raw_array_object,
    upload_dask_array,
    upload_dict,
    upload_json,
    upload_npy_array,
    upload_pickle,
    upload_raw_array,
    upload_sparse_array,
)
from faultproxy import FAULTS, FaultProxy
from s3_servers import SERVERS, S3Endpoint, selected_servers, start_moto

SERVER_NAMES = selected_servers()
# retries off: botocore's "max_attempts" counts *retries* (max_attempts=1 is two attempts);
# "total_max_attempts" counts the first attempt too
NO_RETRY = {"retries": {"total_max_attempts": 1}}


@pytest.fixture(scope="module", params=SERVER_NAMES)
def endpoint(request) -> S3Endpoint:
    return request.getfixturevalue("s3_servers").endpoint(request.param)


@pytest.fixture
def bucket(endpoint):
    """A fresh bucket on ``endpoint``, emptied and removed afterwards."""
    client = endpoint.client()
    name = f"infra-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    yield name
    for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
        client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=name, Delete={"Objects": keys})
    client.delete_bucket(Bucket=name)


@pytest.fixture
def proxy(endpoint):
    with FaultProxy(endpoint.endpoint_url, timeout=20) as p:
        yield p


def _via(endpoint: S3Endpoint, url: str, **config) -> object:
    """A client for ``endpoint``'s credentials, talking to ``url`` (the proxy)."""
    return S3Endpoint(
        endpoint.name, url, endpoint.access_key, endpoint.secret_key, endpoint.region
    ).client(**config)


DATA = bytes(range(256)) * 4096  # 1 MiB


# -- s3_servers ----------------------------------------------------------------------------


def test_selected_servers_parses_the_environment(monkeypatch):
    monkeypatch.delenv("CCSTORE_S3_SERVERS", raising=False)
    assert selected_servers() == list(SERVERS) == ["moto", "ceph", "seaweedfs"]
    monkeypatch.setenv("CCSTORE_S3_SERVERS", " ceph, moto ,")
    assert selected_servers() == ["ceph", "moto"]
    with pytest.raises(ValueError, match="minio"):
        selected_servers("moto,minio")


def test_moto_starts_and_stops_on_a_free_port():
    endpoint, stop = start_moto()
    try:
        client = endpoint.client(**NO_RETRY)
        client.create_bucket(Bucket="moto-lifecycle")
        client.put_object(Bucket="moto-lifecycle", Key="k", Body=b"v")
        assert client.get_object(Bucket="moto-lifecycle", Key="k")["Body"].read() == b"v"
    finally:
        stop()
    port = int(endpoint.endpoint_url.rsplit(":", 1)[1])
    with socket.socket() as s:  # released: a listener could bind it again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT connections
        s.bind(("127.0.0.1", port))


def test_put_get_and_ranged_get(endpoint, bucket):
    client = endpoint.client(**NO_RETRY)
    client.put_object(Bucket=bucket, Key="d/k", Body=DATA, Metadata={"answer": "42"})
    head = client.head_object(Bucket=bucket, Key="d/k")
    assert head["ContentLength"] == len(DATA) and head["Metadata"] == {"answer": "42"}
    assert client.get_object(Bucket=bucket, Key="d/k")["Body"].read() == DATA
    for header, expected in [
        ("bytes=100-199", DATA[100:200]),
        ("bytes=-10", DATA[-10:]),
        (f"bytes={len(DATA) - 5}-", DATA[-5:]),
    ]:
        got = client.get_object(Bucket=bucket, Key="d/k", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["Body"].read() == expected, header


# -- faultproxy ----------------------------------------------------------------------------


def test_proxy_forwards_signed_requests_with_bodies(endpoint, bucket, proxy):
    client = _via(endpoint, proxy.url, **NO_RETRY)
    big = DATA * 3
    client.put_object(Bucket=bucket, Key="p", Body=big)  # Expect: 100-continue, streamed
    assert client.get_object(Bucket=bucket, Key="p")["Body"].read() == big
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="p")["Contents"]]
    assert keys == ["p"]
    client.delete_object(Bucket=bucket, Key="p")
    stats = proxy.stats.snapshot()
    assert stats.requests == 4 and stats.faults == 0
    assert len(big) < stats.bytes_in < len(big) + 8192
    assert len(big) < stats.bytes_out < len(big) + 8192
    assert [(r.method, r.status) for r in proxy.records] == [
        ("PUT", 200),
        ("GET", 200),
        ("GET", 200),
        ("DELETE", 204),
    ]


def _expect_fault(kind, call):
    """Run ``call`` (which reads a whole object) and check boto3 sees fault ``kind``."""
    if kind in ("503", "500", "403"):
        with pytest.raises(botocore.exceptions.ClientError) as info:
            call()
        error = info.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == int(kind)
        codes = {"503": "SlowDown", "500": "InternalError", "403": "AccessDenied"}
        assert error["Error"]["Code"] == codes[kind]
    elif kind == "reset":
        with pytest.raises(
            (botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError)
        ):
            call()
    elif kind == "truncate":
        with pytest.raises(
            (botocore.exceptions.IncompleteReadError, botocore.exceptions.ResponseStreamingError)
        ):
            call()
    else:  # stall, stall_body
        with pytest.raises(
            (botocore.exceptions.ReadTimeoutError, botocore.exceptions.ResponseStreamingError)
        ) as info:
            call()
        assert "timeout" in repr(info.value).lower()


# "ignore_range" changes only ranged reads (test_s3: test_server_ignoring_ranges_...)
@pytest.mark.parametrize("kind", [kind for kind in FAULTS if kind != "ignore_range"])
def test_each_fault_kind_reaches_boto3(endpoint, bucket, proxy, kind):
    endpoint.client().put_object(Bucket=bucket, Key="f", Body=DATA)
    client = _via(endpoint, proxy.url, read_timeout=1, connect_timeout=2, **NO_RETRY)
    proxy.fail_next(1, kind, match=lambda r: r.method == "GET" and r.path.endswith("/f"), stall=5)
    started = time.monotonic()
    _expect_fault(kind, lambda: client.get_object(Bucket=bucket, Key="f")["Body"].read())
    assert time.monotonic() - started < 4.5  # the client's read timeout, not the stall, ended it
    assert proxy.pending_faults == 0 and proxy.stats.snapshot().faults == 1
    assert [r.fault for r in proxy.records] == [kind]
    # the fault was used up: the same request now goes through
    assert client.get_object(Bucket=bucket, Key="f")["Body"].read() == DATA


@pytest.mark.parametrize("kind", ["503", "500", "reset", "stall"])
def test_faults_on_writes(endpoint, bucket, proxy, kind):
    client = _via(endpoint, proxy.url, read_timeout=1, **NO_RETRY)
    proxy.fail_next(1, kind, match=lambda r: r.method == "PUT", stall=5)
    with pytest.raises((botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)):
        client.put_object(Bucket=bucket, Key="w", Body=DATA)
    with pytest.raises(botocore.exceptions.ClientError):  # the server never saw it
        endpoint.client().head_object(Bucket=bucket, Key="w")
    client.put_object(Bucket=bucket, Key="w", Body=DATA)
    assert endpoint.client().get_object(Bucket=bucket, Key="w")["Body"].read() == DATA


def test_fault_matching_only_one_upload_part(endpoint, bucket, proxy):
    client = _via(endpoint, proxy.url, **NO_RETRY)
    is_part_2 = lambda r: r.method == "PUT" and r.query.get("partNumber") == ["2"]  # noqa: E731
    proxy.fail_next(1, "503", match=is_part_2)
    upload = client.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    parts = [b"a" * (5 << 20), b"b" * 1000]
    etags = {}
    etags[1] = client.upload_part(
        Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=parts[0]
    )["ETag"]
    with pytest.raises(botocore.exceptions.ClientError, match="SlowDown"):
        client.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=2, Body=parts[1])
    etags[2] = client.upload_part(
        Bucket=bucket, Key="mp", UploadId=upload, PartNumber=2, Body=parts[1]
    )["ETag"]
    client.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in etags.items()]},
    )
    assert endpoint.client().get_object(Bucket=bucket, Key="mp")["Body"].read() == b"".join(parts)
    assert [r.fault for r in proxy.records if r.fault] == ["503"]


def test_retries_get_past_faults(endpoint, bucket, proxy):
    endpoint.client().put_object(Bucket=bucket, Key="r", Body=DATA)
    client = _via(endpoint, proxy.url, retries={"max_attempts": 4, "mode": "standard"})
    proxy.fail_next(1, "503")
    proxy.fail_next(1, "500")
    proxy.fail_next(1, "reset")
    assert client.get_object(Bucket=bucket, Key="r")["Body"].read() == DATA
    assert [r.fault for r in proxy.records] == ["503", "500", "reset", None]


def test_ranged_get_bytes_on_the_wire(endpoint, bucket, proxy):
    endpoint.client().put_object(Bucket=bucket, Key="big", Body=DATA * 4)
    client = _via(endpoint, proxy.url, **NO_RETRY)
    before = proxy.stats.snapshot()
    body = client.get_object(Bucket=bucket, Key="big", Range="bytes=1000000-1999999")["Body"]
    assert body.read() == (DATA * 4)[1000000:2000000]
    wire = proxy.stats.snapshot() - before
    assert wire.requests == 1
    assert 1_000_000 < wire.bytes_out < 1_000_000 + 2048  # body + status line and headers
    assert wire.bytes_in < 2048  # a GET: request line and headers only
    record = proxy.records[-1]
    assert (record.bytes_in, record.bytes_out) == (wire.bytes_in, wire.bytes_out)


def test_latency_and_bandwidth_cap(endpoint, bucket):
    endpoint.client().put_object(Bucket=bucket, Key="big", Body=DATA * 2)  # 2 MiB
    with FaultProxy(endpoint.endpoint_url, latency=0.05, bandwidth=4 << 20, timeout=20) as p:
        client = _via(endpoint, p.url)
        client.head_object(Bucket=bucket, Key="big")  # connection and client warm
        started = time.monotonic()
        for _ in range(4):
            client.head_object(Bucket=bucket, Key="big")
        assert time.monotonic() - started >= 4 * 0.05  # one delay per request
        started = time.monotonic()
        assert client.get_object(Bucket=bucket, Key="big")["Body"].read() == DATA * 2
        down = time.monotonic() - started
        started = time.monotonic()
        client.put_object(Bucket=bucket, Key="up", Body=DATA * 2)
        up = time.monotonic() - started
    # 2 MiB at 4 MiB/s: at least half a second each way (the link is not shared here)
    assert down >= 0.5 and up >= 0.5, (down, up)
    assert endpoint.client().get_object(Bucket=bucket, Key="up")["Body"].read() == DATA * 2


def test_stall_ends_when_the_proxy_stops(endpoint, bucket):
    endpoint.client().put_object(Bucket=bucket, Key="s", Body=b"x")
    with FaultProxy(endpoint.endpoint_url, timeout=20) as proxy:
        proxy.fail_next(1, "stall", stall=600)
        client = _via(endpoint, proxy.url, read_timeout=1, **NO_RETRY)
        with pytest.raises(botocore.exceptions.ReadTimeoutError):
            client.get_object(Bucket=bucket, Key="s")
        started = time.monotonic()
    assert time.monotonic() - started < 5


def test_fail_next_refuses_unknown_kinds(endpoint):
    with FaultProxy(endpoint.endpoint_url) as proxy, pytest.raises(ValueError, match="stall"):
        proxy.fail_next(1, "teapot")


# -- cottoncandy fixtures --------------------------------------------------------------------

A = np.arange(24, dtype="<i4").reshape(4, 6)
READ_ONLY = np.frombuffer(np.arange(12, dtype="f8").tobytes(), "f8").reshape(3, 4)


def _get(client, bucket, key):
    response = client.get_object(Bucket=bucket, Key=key)
    return response["Body"].read(), response["Metadata"]


@pytest.mark.parametrize(
    ("array", "compression", "expected"),
    [
        (A, True, {"dtype": "<i4", "shape": "4,6", "compression": "gzip", "order": "C"}),
        (A, False, {"dtype": "<i4", "shape": "4,6", "compression": "False", "order": "C"}),
        (A, None, {"dtype": "<i4", "shape": "4,6", "compression": "False", "order": "C"}),
        (
            np.asfortranarray(A.astype(">f8")),
            False,
            {"dtype": ">f8", "shape": "4,6", "compression": "False", "order": "C"},
        ),
        (A[:, ::2], "gzip", {"dtype": "<i4", "shape": "4,3", "compression": "gzip", "order": "C"}),
        (A, "Zstd", {"dtype": "<i4", "shape": "4,6", "compression": "Zstd", "order": "C"}),
        (A, "LZ4", {"dtype": "<i4", "shape": "4,6", "compression": "LZ4", "order": "C"}),
        (A, "Zlib", {"dtype": "<i4", "shape": "4,6", "compression": "Zlib", "order": "C"}),
        (
            np.array(3.5),
            False,
            {"dtype": "<f8", "shape": "", "compression": "False", "order": "C"},
        ),
        (
            np.zeros((0, 3), "f4"),
            True,
            {"dtype": "<f4", "shape": "0,3", "compression": "gzip", "order": "C"},
        ),
        (
            np.array([True, False]),
            False,
            {"dtype": "|b1", "shape": "2", "compression": "False", "order": "C"},
        ),
        # cottoncandy's quirk: read-only C arrays are labelled "F" although the body is C order
        (
            READ_ONLY,
            False,
            {"dtype": "<f8", "shape": "3,4", "compression": "False", "order": "F"},
        ),
    ],
)
def test_raw_array_fixture_round_trips(endpoint, bucket, array, compression, expected):
    client = endpoint.client(**NO_RETRY)
    written = upload_raw_array(client, bucket, "/cc//raw", array, compression)
    assert written == expected
    body, meta = _get(client, bucket, "cc/raw")  # clean_key: no leading '/', '//' -> '/'
    if endpoint.name == "seaweedfs" and "" in expected.values():
        # SeaweedFS drops user metadata whose value is empty: a 0-d array loses "shape"
        assert meta == {k: v for k, v in expected.items() if v}
        meta = written
    assert meta == expected  # exactly the four x-amz-meta-* headers
    c_bytes = np.ascontiguousarray(array).tobytes()
    if expected["compression"] == "gzip":
        assert body[:2] == b"\x1f\x8b" and gzip.decompress(body) == c_bytes
    elif expected["compression"] == "False":
        assert body == c_bytes
    else:
        assert body != c_bytes or array.size == 0
    decoded = decode_raw_array(body, meta)  # cottoncandy's reading, quirks included
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    if expected["order"] == "C":
        np.testing.assert_array_equal(decoded, array)
    else:
        np.testing.assert_array_equal(decoded, np.ravel(array).reshape(array.shape, order="F"))


def test_raw_array_extra_and_legacy_metadata(endpoint, bucket):
    client = endpoint.client(**NO_RETRY)
    upload_raw_array(client, bucket, "x", A, False, subject="S01")
    assert _get(client, bucket, "x")[1]["subject"] == "S01"
    upload_raw_array(client, bucket, "old", A, "gzip", legacy_gzip_flag=True)
    body, meta = _get(client, bucket, "old")
    assert meta == {"dtype": "<i4", "shape": "4,6", "order": "C", "gzip": "True"}
    np.testing.assert_array_equal(decode_raw_array(body, meta), A)
    with pytest.raises(ValueError, match="reserved"):
        raw_array_object(A, False, dtype="x")


def test_canned_acl_is_sent(endpoint, bucket):
    client = endpoint.client(**NO_RETRY)
    upload_raw_array(client, bucket, "acl", A, False)
    grants = client.get_object_acl(Bucket=bucket, Key="acl")["Grants"]
    permissions = {(g["Grantee"].get("URI", ""), g["Permission"]) for g in grants}
    if endpoint.name == "seaweedfs" and len(grants) == 1:
        pytest.skip(f"seaweedfs accepts x-amz-acl: {ACL} but reports only the owner: {grants}")
    assert ("http://acs.amazonaws.com/groups/global/AuthenticatedUsers", "READ") in permissions


def test_npy_json_pickle_fixtures(endpoint, bucket):
    client = endpoint.client(**NO_RETRY)
    upload_npy_array(client, bucket, "n", A)
    upload_json(client, bucket, "j", {"a": [1, 2], "b": "x"})
    upload_pickle(client, bucket, "p", {"t": (1, 2)})
    body, meta = _get(client, bucket, "n")
    assert meta == {} and body.startswith(b"\x93NUMPY")
    np.testing.assert_array_equal(np.load(io.BytesIO(body)), A)
    body, meta = _get(client, bucket, "j")
    assert meta == {} and body == b'{"a": [1, 2], "b": "x"}'
    assert pickle.loads(_get(client, bucket, "p")[0]) == {"t": (1, 2)}


M = np.zeros((6, 8))
M[1, 2], M[4, 7], M[5, 0] = 1.0, 2.5, -1.0


@pytest.mark.parametrize(
    ("matrix", "kind"),
    [
        (sp.csr_matrix(M), "csr"),
        (sp.csc_matrix(M), "csc"),
        (sp.coo_matrix(M), "coo"),
        (sp.dia_matrix(M), "dia"),
        (sp.bsr_matrix(M), "bsr"),
        (sp.lil_matrix(M), "csr"),
        (sp.csc_array(M), "csr"),  # *_array classes are not *_matrix: converted to csr
    ],
)
def test_sparse_fixture_layout(endpoint, bucket, matrix, kind):
    client = endpoint.client(**NO_RETRY)
    document = upload_sparse_array(client, bucket, "sp", matrix)
    assert document == {"type": kind, "attrs": list(SPARSE_LAYOUTS[kind]), "shape": [6, 8]}
    listed = client.list_objects_v2(Bucket=bucket, Prefix="sp/")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(
        ["sp/metadata.json", *(f"sp/{a}" for a in SPARSE_LAYOUTS[kind])]
    )
    assert json.loads(_get(client, bucket, "sp/metadata.json")[0]) == document
    parts = {}
    for attr in document["attrs"]:
        body, meta = _get(client, bucket, f"sp/{attr}")
        assert meta["compression"] == "gzip"  # cottoncandy's default for the parts
        parts[attr] = decode_raw_array(body, meta)
    if kind == "coo":
        rebuilt = sp.coo_matrix((parts["data"], (parts["row"], parts["col"])), shape=(6, 8))
    elif kind == "dia":
        rebuilt = sp.dia_matrix((parts["data"], parts["offsets"]), shape=(6, 8))
    else:
        cls = getattr(sp, f"{kind}_matrix")
        rebuilt = cls((parts["data"], parts["indices"], parts["indptr"]), shape=(6, 8))
    np.testing.assert_array_equal(rebuilt.toarray(), M)


def test_dask_parts_sizing():
    big = np.zeros((100, 200, 70), "f4")  # 5.6 MB: parts of 5 MiB along the last axis
    shapes = [(c, p.shape) for c, p in dask_parts(big, -1, 5 << 20)]
    assert shapes == [
        ((0, 0, 0), (100, 200, 66)),
        ((0, 0, 1), (100, 200, 4)),
        ((0, 0, 2), (100, 200, 0)),
    ]
    assert [p.shape for _, p in dask_parts(big, -2, 5 << 20)] == [big.shape]  # quirk
    assert [c for c, _ in dask_parts(big, None, 5 << 20)][-1] == (1, 2, 1)


def test_dask_fixture_reassembles(endpoint, bucket):
    client = endpoint.client(**NO_RETRY)
    big = np.arange(100 * 200 * 70, dtype="f4").reshape(100, 200, 70)
    document = upload_dask_array(client, bucket, "dk", big, axis=0, buffersize=5 << 20)
    stored = json.loads(_get(client, bucket, "dk/metadata.json")[0])
    assert stored == document
    assert stored["shape"] == [100, 200, 70] and stored["dtype"] == "<f4"
    assert stored["chunks"][0][-1] == 0 and stored["chunks"][1:] == [[200], [70]]
    out = np.empty(big.shape, big.dtype)
    offsets = [np.cumsum([0, *sizes]) for sizes in stored["chunks"]]
    for coords, key in stored["dask"]:
        part = decode_raw_array(*_get(client, bucket, key))
        index = tuple(
            slice(offsets[d][c], offsets[d][c] + part.shape[d]) for d, c in enumerate(coords)
        )
        out[index] = part
    np.testing.assert_array_equal(out, big)


def test_dict_fixture(endpoint, bucket):
    client = endpoint.client(**NO_RETRY)
    written = upload_dict(client, bucket, "g", {"x": A, "sub": {"y": np.arange(3), "z": [1.5]}})
    assert written == ["g/x", "g/sub/y", "g/sub/z"]
    np.testing.assert_array_equal(decode_raw_array(*_get(client, bucket, "g/sub/z")), [1.5])
