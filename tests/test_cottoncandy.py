"""Data written by cottoncandy 0.4.0 reads back through ccstore, on every S3 server.

The fixtures write objects with raw boto3 exactly as cottoncandy's ``upload_raw_array``,
``upload_npy_array``, ``upload_sparse_array`` and ``upload_dask_array`` do (interfaces.py in
cottoncandy 0.4.0): raw bytes in memory order plus ``x-amz-meta-dtype/shape/order/compression``
headers, and plain-JSON ``metadata.json`` beside the parts of sparse and chunked arrays. The
same reads were also checked against objects written by the real cottoncandy 0.4.0.
"""

from __future__ import annotations

import gzip
import io
import json

import numcodecs
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import S3_SERVERS, make_s3_backend

import ccstore
from ccstore import CorruptObjectError


@pytest.fixture(params=S3_SERVERS)
def store(request, s3_servers):
    backend = make_s3_backend(s3_servers.endpoint(request.param))
    return ccstore.Store(backend, "lab")


def upload_raw_array(store, name, array, compression=False, legacy_gzip_flag=None):
    """What cottoncandy.upload_raw_array sends: body and metadata."""
    order = "C" if array.flags.carray else "F"
    if not array.flags["C_CONTIGUOUS"]:
        order = "C"
        array = np.array(array, order="C")
    meta = {
        "dtype": array.dtype.str,
        "shape": ",".join(map(str, array.shape)),
        "compression": str(compression),
        "order": order,
    }
    if compression is False:
        body = array.tobytes(order="A")
    elif compression == "gzip":
        body = gzip.compress((array.T if array.flags["F_CONTIGUOUS"] else array).tobytes())
    else:
        body = bytes(numcodecs.get_codec({"id": compression.lower()}).encode(array))
    if legacy_gzip_flag is not None:
        del meta["compression"]
        meta["gzip"] = str(legacy_gzip_flag)
    backend = store.backend
    backend._client.put_object(
        Bucket=backend.bucket, Key=store.prefix + name, Body=body, Metadata=meta
    )


def upload_json(store, name, value):
    backend = store.backend
    backend._client.put_object(
        Bucket=backend.bucket, Key=store.prefix + name, Body=json.dumps(value).encode()
    )


ARRAY = np.arange(24, dtype="<i4").reshape(4, 6)


@pytest.mark.parametrize(
    ("name", "array", "compression"),
    [
        ("c", ARRAY, False),
        ("f", np.asfortranarray(ARRAY.astype(">f8")), False),
        ("gz", ARRAY, "gzip"),
        ("gz-f", np.asfortranarray(ARRAY.astype("f8")), "gzip"),
        ("zstd", ARRAY, "Zstd"),
        ("lz4", ARRAY.astype("u2"), "LZ4"),
        ("scalar", np.array(3.5), False),
        ("empty", np.zeros((0, 3), "f4"), False),
    ],
)
def test_raw_arrays(store, name, array, compression):
    upload_raw_array(store, f"raw/{name}", array, compression)
    got = store[f"raw/{name}"]
    assert type(got) is np.ndarray and got.dtype == array.dtype and got.shape == array.shape
    np.testing.assert_array_equal(got, array)
    np.testing.assert_array_equal(store.load(f"raw/{name}"), array)


def test_legacy_gzip_flag(store):
    upload_raw_array(store, "old", ARRAY, "gzip", legacy_gzip_flag=True)
    np.testing.assert_array_equal(store["old"], ARRAY)
    upload_raw_array(store, "old-plain", ARRAY, False, legacy_gzip_flag=False)
    np.testing.assert_array_equal(store["old-plain"], ARRAY)


def test_npy_object(store):
    buffer = io.BytesIO()
    np.save(buffer, ARRAY)
    store.backend.write(store.prefix + "npy", [buffer.getvalue()])
    np.testing.assert_array_equal(store["npy"], ARRAY)


@pytest.mark.parametrize(
    ("kind", "attrs"),
    [
        ("csr", ["data", "indices", "indptr"]),
        ("csc", ["data", "indices", "indptr"]),
        ("coo", ["row", "col", "data"]),
        ("dia", ["data", "offsets"]),
        ("bsr", ["data", "indices", "indptr"]),
    ],
)
def test_sparse_prefixes(store, kind, attrs):
    matrix = getattr(sp, f"{kind}_matrix")(ARRAY)
    for attr in attrs:
        upload_raw_array(store, f"m/{attr}", np.ascontiguousarray(getattr(matrix, attr)))
    upload_json(
        store, "m/metadata.json", {"type": kind, "attrs": attrs, "shape": list(matrix.shape)}
    )
    got = store["m"]
    assert type(got) is type(matrix) and (got != matrix).nnz == 0
    assert type(store.load("m")) is type(matrix)


def test_dask_prefix(store):
    big = np.arange(6 * 10 * 7, dtype="f4").reshape(6, 10, 7)
    splits = [(0, 3), (3, 6), (6, 7)]  # upload_dask_array(axis=-1) parts along the last axis
    layout = []
    for i, (a, b) in enumerate(splits):
        name = f"arr/pt{i:04d}"
        upload_raw_array(store, name, big[..., a:b].copy())
        layout.append([[0, 0, i], store.prefix + name])
    upload_json(
        store,
        "arr/metadata.json",
        {
            "shape": list(big.shape),
            "dtype": big.dtype.str,
            "dask": layout,
            "chunk_sizes": [[6, 10, b - a] for a, b in splits],
            "chunks": [[6], [10], [b - a for a, b in splits]],
        },
    )
    np.testing.assert_array_equal(store["arr"], big)


def test_damaged_cottoncandy_array_is_a_clear_error(store):
    backend = store.backend
    backend._client.put_object(
        Bucket=backend.bucket,
        Key=store.prefix + "bad",
        Body=b"xx",
        Metadata={"dtype": "<f8", "shape": "4", "compression": "False"},
    )
    with pytest.raises(CorruptObjectError, match="unreadable cottoncandy array"):
        store["bad"]


def test_plain_foreign_object_is_still_refused(store):
    store.backend.write(store.prefix + "other", [b"not an array of any kind" * 4])
    with pytest.raises(CorruptObjectError, match="not a ccstore object"):
        store["other"]


def test_store_that_requires_encryption_refuses_cottoncandy_arrays(store):
    upload_raw_array(store, "c", ARRAY)
    strict = ccstore.Store(
        store.backend,
        store.prefix,
        ccstore.StoreOptions(encryption=ccstore.generate_key(), require_encryption=True),
    )
    with pytest.raises(ccstore.UnencryptedObjectError, match=r"'lab/c'.*stored unencrypted"):
        strict["c"]
