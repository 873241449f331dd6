"""S3 benchmark operations, one function per (library, workload), each run in a fresh process.

Every function takes the endpoint, bucket and key, does its setup outside the timer, times the
transfer only, and returns ``(seconds, extra)``. Each library is used the way its own
documentation recommends, with its transfer settings tuned where it has any. Every library's
client is built before the timer starts (ccstore and s3fs build theirs lazily, on the first
request, so they are built explicitly, without a request). The large transfers also make one
small request first (``warm``), so that every library starts with one connection open; the
run that counts requests passes ``warm=False``.

Reads of part of the large array (row, column, points) return ``digest`` of the values read,
which bench_s3 checks against ``expected_digests``. Byte-range peers read the unchunked stored
object: .npy for s3fs (header first), raw C-order bytes for obstore and boto3. The zarr peers
(zarr 3 through ``FsspecStore`` over s3fs and ``ObjectStore`` over obstore) store the large
array chunked as ccstore does — ccstore's chunk shape, uncompressed — one object per chunk,
and read whole chunks; they have no small-object or listing functions (bench_s3 runs only the
workloads a library has a function for).

Request bodies are not hashed into signatures (``UNSIGNED-PAYLOAD``) for any library that can
be told so — ccstore, s3fs, obstore, boto3, and zarr through the same s3fs and obstore clients:
the benchmark link is loopback http, and on the https endpoints of real use none of them needs
the hash (TLS protects the body), so timing it here would measure a cost users do not pay.
cottoncandy runs as its users run it. Credentials come from the environment
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) in every process.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

REGION = "us-east-1"
CONCURRENCY = 8
POINTS = 100  # elements the points workload reads


def _array(nbytes: int) -> np.ndarray:
    """The large array: float32, as near square as ``nbytes`` allows (as bench_s3.run)."""
    values = np.random.default_rng(0).standard_normal(nbytes // 4, dtype=np.float32)
    side = math.isqrt(nbytes // 4)
    return values[: nbytes // 4 // side * side].reshape(-1, side)


def _stored_nbytes(nbytes: int) -> int:
    """The size of ``_array(nbytes)``: ``nbytes`` rounded down to whole rows."""
    side = math.isqrt(nbytes // 4)
    return nbytes // 4 // side * side * 4


def _points(shape: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The rows and columns of the elements the points workload reads (seeded: the same for
    every library)."""
    rng = np.random.default_rng(1)
    return rng.integers(0, shape[0], POINTS), rng.integers(0, shape[1], POINTS)


def _digest(values) -> str:
    """A fingerprint of the values a read returned, in order, as float32."""
    return hashlib.sha256(np.ascontiguousarray(values, "<f4").tobytes()).hexdigest()[:16]


def expected_digests(nbytes: int, shape: list[int]) -> dict[str, str]:
    """The digest each partial read (by workload name) must return."""
    array = _array(nbytes)
    return {
        "row": _digest(array[shape[0] // 3]),
        "column": _digest(array[:, shape[1] // 3]),
        "points": _digest(array[_points(shape)]),
    }


def _read(values) -> dict:
    """What a partial read reports: how many values it returned, and their digest."""
    return {"values": int(np.size(values)), "digest": _digest(values)}


def _column_starts(shape: list[int], offset: int = 0) -> list[int]:
    """The byte offset of every element of the column read, in a C-order object whose data
    starts at ``offset``."""
    return (offset + (np.arange(shape[0]) * shape[1] + shape[1] // 3) * 4).tolist()


def _point_starts(shape: list[int], offset: int = 0) -> list[int]:
    """The byte offset of every point read, in a C-order object whose data starts at
    ``offset``."""
    rows, cols = _points(shape)
    return (offset + (rows * shape[1] + cols) * 4).tolist()


def _keys() -> tuple[str, str]:
    return os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]


def _timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


# -- ccstore -------------------------------------------------------------------------------


def _ccstore(endpoint: str, bucket: str):
    import ccstore

    store = ccstore.open(
        f"s3://{bucket}",
        endpoint_url=endpoint,
        region=REGION,
        concurrency=CONCURRENCY,
        progress=False,
        payload_signing=False,
    )
    _ = store.backend._client  # builds the boto3 client (lazily built otherwise); no request
    return store


def ccstore_upload(endpoint: str, bucket: str, key: str, nbytes: int, warm: bool = True):
    store, array = _ccstore(endpoint, bucket), _array(nbytes)
    if warm:
        _ = f"{key}.warm-up" in store
    return _timed(lambda: store.__setitem__(key, array))[0], {}


def ccstore_download(endpoint: str, bucket: str, key: str, nbytes: int, warm: bool = True):
    store = _ccstore(endpoint, bucket)
    if warm:
        _ = f"{key}.warm-up" in store
    seconds, array = _timed(lambda: store.load(key))
    assert array.nbytes == _stored_nbytes(nbytes)
    return seconds, {}


def ccstore_row(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    store = _ccstore(endpoint, bucket)
    seconds, row = _timed(lambda: store[key][shape[0] // 3])
    return seconds, _read(row)


def ccstore_column(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    store = _ccstore(endpoint, bucket)
    seconds, column = _timed(lambda: store[key][:, shape[1] // 3])
    return seconds, _read(column)


def ccstore_points(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    """One fancy-indexing call: ccstore fetches the chunks the points fall in concurrently."""
    store, (rows, cols) = _ccstore(endpoint, bucket), _points(shape)
    seconds, values = _timed(lambda: store[key][rows, cols])
    return seconds, _read(values)


def ccstore_small_put(endpoint: str, bucket: str, prefix: str, count: int):
    store, value = _ccstore(endpoint, bucket), np.arange(1024, dtype=np.float32)
    return _timed(lambda: [store.__setitem__(f"{prefix}/{i}", value) for i in range(count)])[0], {}


def ccstore_small_get(endpoint: str, bucket: str, prefix: str, count: int):
    store = _ccstore(endpoint, bucket)
    return _timed(lambda: [store.load(f"{prefix}/{i}") for i in range(count)])[0], {}


def ccstore_list(endpoint: str, bucket: str, prefix: str, count: int):
    """``glob``: one listing below the prefix, as the peers make (``list(store)`` makes two:
    ``list`` asks the store's ``len`` first, which lists too)."""
    store = _ccstore(endpoint, bucket)
    seconds, keys = _timed(lambda: store.glob(f"{prefix}/*"))
    assert len(keys) == count, (len(keys), count)
    return seconds, {"keys": len(keys)}


# -- cottoncandy 0.4.0 (upload_raw_array / download_raw_array) ---------------------------


def _cottoncandy(endpoint: str, bucket: str):
    import cottoncandy

    access, secret = _keys()
    return cottoncandy.get_interface(
        bucket, ACCESS_KEY=access, SECRET_KEY=secret, endpoint_url=endpoint, verbose=False
    )


def cottoncandy_upload(endpoint: str, bucket: str, key: str, nbytes: int, warm: bool = True):
    cci, array = _cottoncandy(endpoint, bucket), _array(nbytes)
    if warm:
        cci.exists_object(f"{key}.warm-up")
    return _timed(lambda: cci.upload_raw_array(key, array))[0], {}


def cottoncandy_download(endpoint: str, bucket: str, key: str, nbytes: int, warm: bool = True):
    cci = _cottoncandy(endpoint, bucket)
    if warm:
        cci.exists_object(f"{key}.warm-up")
    seconds, array = _timed(lambda: cci.download_raw_array(key))
    assert array.nbytes == _stored_nbytes(nbytes)
    return seconds, {}


def cottoncandy_row(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    cci = _cottoncandy(endpoint, bucket)  # no partial reads: the whole array comes down
    seconds, array = _timed(lambda: cci.download_raw_array(key).reshape(shape)[shape[0] // 3])
    return seconds, _read(array)


def cottoncandy_column(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    cci = _cottoncandy(endpoint, bucket)  # no partial reads: the whole array comes down
    seconds, array = _timed(lambda: cci.download_raw_array(key).reshape(shape)[:, shape[1] // 3])
    return seconds, _read(array)


def cottoncandy_points(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    cci, points = _cottoncandy(endpoint, bucket), _points(shape)  # the whole array comes down
    seconds, values = _timed(lambda: cci.download_raw_array(key).reshape(shape)[points])
    return seconds, _read(values)


def cottoncandy_small_put(endpoint: str, bucket: str, prefix: str, count: int):
    cci, value = _cottoncandy(endpoint, bucket), np.arange(1024, dtype=np.float32)
    return _timed(lambda: [cci.upload_raw_array(f"{prefix}/{i}", value) for i in range(count)])[
        0
    ], {}


def cottoncandy_small_get(endpoint: str, bucket: str, prefix: str, count: int):
    cci = _cottoncandy(endpoint, bucket)
    return _timed(lambda: [cci.download_raw_array(f"{prefix}/{i}") for i in range(count)])[0], {}


def cottoncandy_list(endpoint: str, bucket: str, prefix: str, count: int):
    """``glob``: ``ls`` makes one request of at most 1,000 keys, ``glob`` pages through all."""
    cci = _cottoncandy(endpoint, bucket)
    seconds, keys = _timed(lambda: cci.glob(f"{prefix}/*"))
    assert len(keys) == count, (len(keys), count)
    return seconds, {"keys": len(keys)}


# -- s3fs + numpy (np.save into fs.open, np.load) ------------------------------------------


# botocore config for s3fs (and zarr's FsspecStore), as for boto3 below: botocore >= 1.36
# streams checksum trailers by default, which S3-compatible servers may not support (Ceph 16
# left such small PUTs hanging); and no payload hashing (see the module docstring).
S3FS_CONFIG = {
    "request_checksum_calculation": "when_required",
    "response_checksum_validation": "when_required",
    "s3": {"payload_signing_enabled": False},
}


def _s3fs(endpoint: str, max_concurrency: int = CONCURRENCY, asynchronous: bool = False):
    """An s3fs filesystem, its client built (no request); ``asynchronous`` for zarr's
    FsspecStore, whose event loop then runs the client (so it is built there)."""
    import s3fs

    access, secret = _keys()
    fs = s3fs.S3FileSystem(
        key=access,
        secret=secret,
        endpoint_url=endpoint,
        client_kwargs={"region_name": REGION},
        config_kwargs=S3FS_CONFIG,
        max_concurrency=max_concurrency,
        asynchronous=asynchronous,
    )
    if asynchronous:
        from zarr.core.sync import sync

        sync(fs.set_session())
    else:
        fs.connect()
    return fs


def s3fs_upload(endpoint: str, bucket: str, key: str, nbytes: int, warm: bool = True):
    fs, array = _s3fs(endpoint), _array(nbytes)
    if warm:
        fs.exists(f"{bucket}/{key}.warm-up")

    def save():
        with fs.open(f"{bucket}/{key}", "wb", block_size=8 << 20) as f:
            np.save(f, array)

    return _timed(save)[0], {}


def s3fs_download(endpoint: str, bucket: str, key: str, nbytes: int, warm: bool = True):
    fs = _s3fs(endpoint)
    if warm:
        fs.exists(f"{bucket}/{key}.warm-up")

    def load():
        with fs.open(f"{bucket}/{key}", "rb", block_size=8 << 20) as f:
            return np.load(f)

    seconds, array = _timed(load)
    assert array.nbytes == _stored_nbytes(nbytes)
    return seconds, {}


def _npy_header(fs, path: str) -> tuple[int, tuple[int, ...], np.dtype]:
    """Where the data of the .npy object ``path`` starts, its shape and dtype."""
    with fs.open(path, "rb", block_size=1 << 16, cache_type="none") as f:
        fmt = np.lib.format
        read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
        shape, _, dtype = read_header[fmt.read_magic(f)](f)
        return f.tell(), shape, dtype


def s3fs_row(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    """The best s3fs + numpy can do: read the .npy header, then the row's byte range."""
    fs, path = _s3fs(endpoint), f"{bucket}/{key}"

    def row():
        offset, shape_, dtype = _npy_header(fs, path)
        start = offset + shape[0] // 3 * shape_[1] * dtype.itemsize
        end = start + shape_[1] * dtype.itemsize
        return np.frombuffer(fs.cat_file(path, start=start, end=end), dtype)

    seconds, values = _timed(row)
    return seconds, _read(values)


def _s3fs_elements(fs, path: str, starts_of) -> np.ndarray:
    """The .npy header, then one concurrent ``cat_ranges`` of a range per element."""
    offset, _, dtype = _npy_header(fs, path)
    starts = starts_of(offset)
    ends = [start + dtype.itemsize for start in starts]
    parts = fs.cat_ranges([path] * len(starts), starts, ends, on_error="raise")
    return np.frombuffer(b"".join(parts), dtype)


def s3fs_column(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    fs, path = _s3fs(endpoint), f"{bucket}/{key}"
    seconds, values = _timed(
        lambda: _s3fs_elements(fs, path, lambda offset: _column_starts(shape, offset))
    )
    return seconds, _read(values)


def s3fs_points(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    fs, path = _s3fs(endpoint), f"{bucket}/{key}"
    seconds, values = _timed(
        lambda: _s3fs_elements(fs, path, lambda offset: _point_starts(shape, offset))
    )
    return seconds, _read(values)


def s3fs_small_put(endpoint: str, bucket: str, prefix: str, count: int):
    fs, value = _s3fs(endpoint), np.arange(1024, dtype=np.float32)

    def put():
        for i in range(count):
            with fs.open(f"{bucket}/{prefix}/{i}", "wb") as f:
                np.save(f, value)

    return _timed(put)[0], {}


def s3fs_small_get(endpoint: str, bucket: str, prefix: str, count: int):
    fs = _s3fs(endpoint)

    def get():
        for i in range(count):
            with fs.open(f"{bucket}/{prefix}/{i}", "rb") as f:
                np.load(f)

    return _timed(get)[0], {}


def s3fs_list(endpoint: str, bucket: str, prefix: str, count: int):
    fs = _s3fs(endpoint)
    seconds, keys = _timed(lambda: fs.find(f"{bucket}/{prefix}"))
    assert len(keys) == count, (len(keys), count)
    return seconds, {"keys": len(keys)}


# -- obstore (put / get / get_range) --------------------------------------------------------


def _obstore(endpoint: str, bucket: str, prefix: str | None = None):
    from obstore.store import S3Store

    access, secret = _keys()
    return S3Store(
        bucket,
        prefix=prefix,
        endpoint=endpoint,
        access_key_id=access,
        secret_access_key=secret,
        region=REGION,
        unsigned_payload=True,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )


def _obstore_warm_up(store, key: str) -> None:
    import obstore

    obstore.list(store, prefix=f"{key}.warm-up").collect()


def obstore_upload(endpoint: str, bucket: str, key: str, nbytes: int, warm: bool = True):
    import obstore

    store, array = _obstore(endpoint, bucket), _array(nbytes)
    if warm:
        _obstore_warm_up(store, key)
    put = lambda: obstore.put(
        store,
        key,
        memoryview(array).cast("B"),
        chunk_size=8 << 20,
        max_concurrency=CONCURRENCY,
    )
    return _timed(put)[0], {}


def obstore_download(endpoint: str, bucket: str, key: str, nbytes: int, warm: bool = True):
    import obstore

    store = _obstore(endpoint, bucket)
    if warm:
        _obstore_warm_up(store, key)
    seconds, data = _timed(lambda: np.frombuffer(obstore.get(store, key).bytes(), np.float32))
    assert data.nbytes == _stored_nbytes(nbytes)
    return seconds, {}


def obstore_row(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    import obstore

    store = _obstore(endpoint, bucket)
    start = shape[0] // 3 * shape[1] * 4
    seconds, data = _timed(
        lambda: np.frombuffer(
            obstore.get_range(store, key, start=start, length=shape[1] * 4), np.float32
        )
    )
    return seconds, _read(data)


def _obstore_elements(store, key: str, starts: list[int]) -> np.ndarray:
    """One ``get_ranges`` call, a range per element (obstore merges ranges < 1 MiB apart)."""
    import obstore

    parts = obstore.get_ranges(store, key, starts=starts, lengths=[4] * len(starts))
    return np.frombuffer(b"".join(parts), np.float32)


def obstore_column(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    store, starts = _obstore(endpoint, bucket), _column_starts(shape)
    seconds, values = _timed(lambda: _obstore_elements(store, key, starts))
    return seconds, _read(values)


def obstore_points(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    store, starts = _obstore(endpoint, bucket), _point_starts(shape)
    seconds, values = _timed(lambda: _obstore_elements(store, key, starts))
    return seconds, _read(values)


def obstore_small_put(endpoint: str, bucket: str, prefix: str, count: int):
    import obstore

    store, value = _obstore(endpoint, bucket), np.arange(1024, dtype=np.float32).tobytes()
    return _timed(lambda: [obstore.put(store, f"{prefix}/{i}", value) for i in range(count)])[0], {}


def obstore_small_get(endpoint: str, bucket: str, prefix: str, count: int):
    import obstore

    store = _obstore(endpoint, bucket)
    get = lambda: [obstore.get(store, f"{prefix}/{i}").bytes() for i in range(count)]
    return _timed(get)[0], {}


def obstore_list(endpoint: str, bucket: str, prefix: str, count: int):
    import obstore

    store = _obstore(endpoint, bucket)
    seconds, keys = _timed(lambda: obstore.list(store, prefix=prefix).collect())
    assert len(keys) == count, (len(keys), count)
    return seconds, {"keys": len(keys)}


# -- plain boto3 (upload_fileobj / download_fileobj, tuned TransferConfig) ---------------


def _boto3(endpoint: str):
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    config = Config(
        max_pool_connections=2 * CONCURRENCY,
        s3={"addressing_style": "path", "payload_signing_enabled": False},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    transfer = TransferConfig(
        multipart_threshold=8 << 20,
        multipart_chunksize=8 << 20,
        max_concurrency=CONCURRENCY,
        use_threads=True,
    )
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION, config=config), transfer


class _ArrayWriter(io.RawIOBase):
    """A seekable file over a preallocated buffer, so downloads land without a second copy."""

    def __init__(self, out: memoryview) -> None:
        self._out, self._pos = out, 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = offset if whence == 0 else self._pos + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def write(self, data) -> int:
        n = len(data)
        self._out[self._pos : self._pos + n] = data
        self._pos += n
        return n


def boto3_upload(endpoint: str, bucket: str, key: str, nbytes: int, warm: bool = True):
    client, transfer = _boto3(endpoint)
    array = _array(nbytes)
    if warm:
        client.head_bucket(Bucket=bucket)
    upload = lambda: client.upload_fileobj(
        io.BytesIO(memoryview(array).cast("B")),
        bucket,
        key,
        Config=transfer,
    )
    return _timed(upload)[0], {}


def boto3_download(endpoint: str, bucket: str, key: str, nbytes: int, warm: bool = True):
    client, transfer = _boto3(endpoint)
    if warm:
        client.head_bucket(Bucket=bucket)

    def download():
        out = np.empty(nbytes // 4, np.float32)
        client.download_fileobj(
            bucket, key, _ArrayWriter(memoryview(out).cast("B")), Config=transfer
        )
        return out

    return _timed(download)[0], {}


def boto3_row(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    client, _ = _boto3(endpoint)
    start = shape[0] // 3 * shape[1] * 4
    get = lambda: client.get_object(
        Bucket=bucket,
        Key=key,
        Range=f"bytes={start}-{start + shape[1] * 4 - 1}",
    )["Body"].read()
    seconds, data = _timed(get)
    return seconds, _read(np.frombuffer(data, np.float32))


def _boto3_elements(client, bucket: str, key: str, starts: list[int]) -> np.ndarray:
    """A ranged GET per element, ``CONCURRENCY`` at a time (S3 has no multi-range GET)."""

    def get(start: int) -> bytes:
        return client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{start + 3}")[
            "Body"
        ].read()

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return np.frombuffer(b"".join(pool.map(get, starts)), np.float32)


def boto3_column(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    (client, _), starts = _boto3(endpoint), _column_starts(shape)
    seconds, values = _timed(lambda: _boto3_elements(client, bucket, key, starts))
    return seconds, _read(values)


def boto3_points(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    (client, _), starts = _boto3(endpoint), _point_starts(shape)
    seconds, values = _timed(lambda: _boto3_elements(client, bucket, key, starts))
    return seconds, _read(values)


def boto3_small_put(endpoint: str, bucket: str, prefix: str, count: int):
    client, _ = _boto3(endpoint)
    value = np.arange(1024, dtype=np.float32).tobytes()
    put = lambda: [
        client.put_object(Bucket=bucket, Key=f"{prefix}/{i}", Body=value) for i in range(count)
    ]
    return _timed(put)[0], {}


def boto3_small_get(endpoint: str, bucket: str, prefix: str, count: int):
    client, _ = _boto3(endpoint)
    get = lambda: [
        client.get_object(Bucket=bucket, Key=f"{prefix}/{i}")["Body"].read() for i in range(count)
    ]
    return _timed(get)[0], {}


def boto3_list(endpoint: str, bucket: str, prefix: str, count: int):
    client, _ = _boto3(endpoint)
    pages = lambda: client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/"
    )
    seconds, keys = _timed(lambda: [o["Key"] for page in pages() for o in page.get("Contents", ())])
    assert len(keys) == count, (len(keys), count)
    return seconds, {"keys": len(keys)}


# -- zarr 3: FsspecStore over s3fs, ObjectStore over obstore -------------------------------


def zarr_store(
    kind: str,
    endpoint: str,
    bucket: str,
    path: str,
    read_only: bool = False,
    s3fs_concurrency: int = CONCURRENCY,
):
    """A zarr store at ``bucket/path``: ``FsspecStore`` over ``_s3fs`` (``kind="fsspec"``) or
    ``ObjectStore`` over ``_obstore`` (``"obstore"``), clients built (bench_zarr uses these).

    ``s3fs_concurrency`` is s3fs's ``max_concurrency``, the parts of one object in flight:
    above 1, s3fs asks an object's size before every whole-object GET, to split objects over
    50 MiB (zarr fetches many objects concurrently itself)."""
    if kind == "fsspec":
        from zarr.storage import FsspecStore

        fs = _s3fs(endpoint, max_concurrency=s3fs_concurrency, asynchronous=True)
        return FsspecStore(fs, path=f"{bucket}/{path}", read_only=read_only)
    from zarr.storage import ObjectStore

    return ObjectStore(_obstore(endpoint, bucket, prefix=path), read_only=read_only)


# Chunks zarr moves at a time (its ``async.concurrency``, default 10). Tried on moto with 20 ms
# added, 128 MiB, 3 runs each of 8, 10, 16, 32: 16 downloaded in ~0.9x the time of 8 or 10 with
# both stores, uploads were level within the spread, 32 was no faster.
ZARR_CONCURRENCY = 2 * CONCURRENCY


def _zarr(kind: str, endpoint: str, bucket: str, key: str, read_only: bool = True):
    """The store of the large array (at ``key``); one GET per chunk with s3fs (ccstore's
    chunks are 4 MiB)."""
    import zarr

    zarr.config.set({"async.concurrency": ZARR_CONCURRENCY})
    return zarr_store(kind, endpoint, bucket, key, read_only, s3fs_concurrency=1)


def _zarr_warm_up(store) -> None:
    from zarr.core.sync import sync

    sync(store.exists("warm-up"))


def _zarr_array(store, shape: tuple[int, ...]):
    """The large array's zarr array, as ccstore stores it: ccstore's automatic chunk shape,
    uncompressed. A previous run's array of that shape is reused, its chunks to be
    overwritten: replacing it (``overwrite=True``) would delete every chunk first, and
    ObjectStore deletes them one request at a time."""
    import zarr

    from ccstore.chunking import auto_chunks

    chunks = auto_chunks(shape, 4)  # as ccstore_upload's ``store[key] = array`` chooses
    try:
        array = zarr.open_array(store, mode="r+", zarr_format=3)
        if array.shape == shape and array.chunks == chunks:
            return array
    except FileNotFoundError:
        pass
    return zarr.create_array(
        store, shape=shape, chunks=chunks, dtype="float32", compressors=None, overwrite=True
    )


def _zarr_upload(kind: str, endpoint: str, bucket: str, key: str, nbytes: int):
    """``array[...] = values``: zarr puts every chunk as an object, ``ZARR_CONCURRENCY`` at once.
    The array's metadata is written (or read) before the timer, so the upload needs no
    warm-up request: that one opened a connection (and is counted, ``warm`` or not)."""
    values = _array(nbytes)
    array = _zarr_array(_zarr(kind, endpoint, bucket, key, read_only=False), values.shape)
    return _timed(lambda: array.__setitem__(Ellipsis, values))[0], {}


def _zarr_download(kind: str, endpoint: str, bucket: str, key: str, nbytes: int, warm: bool):
    import zarr

    store = _zarr(kind, endpoint, bucket, key)
    if warm:
        _zarr_warm_up(store)
    seconds, values = _timed(lambda: zarr.open_array(store, mode="r", zarr_format=3)[...])
    assert values.nbytes == _stored_nbytes(nbytes)
    return seconds, {}


def _zarr_read(kind: str, endpoint: str, bucket: str, key: str, select):
    """Open the array (its metadata: one GET) and read ``select(array)``, whole chunks."""
    import zarr

    store = _zarr(kind, endpoint, bucket, key)
    seconds, values = _timed(lambda: select(zarr.open_array(store, mode="r", zarr_format=3)))
    return seconds, _read(values)


def zarr_fsspec_upload(endpoint: str, bucket: str, key: str, nbytes: int, warm: bool = True):
    return _zarr_upload("fsspec", endpoint, bucket, key, nbytes)


def zarr_fsspec_download(endpoint: str, bucket: str, key: str, nbytes: int, warm: bool = True):
    return _zarr_download("fsspec", endpoint, bucket, key, nbytes, warm)


def zarr_fsspec_row(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    return _zarr_read("fsspec", endpoint, bucket, key, lambda a: a[shape[0] // 3])


def zarr_fsspec_column(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    return _zarr_read("fsspec", endpoint, bucket, key, lambda a: a[:, shape[1] // 3])


def zarr_fsspec_points(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    points = _points(shape)
    return _zarr_read("fsspec", endpoint, bucket, key, lambda a: a.vindex[points])


def zarr_obstore_upload(endpoint: str, bucket: str, key: str, nbytes: int, warm: bool = True):
    return _zarr_upload("obstore", endpoint, bucket, key, nbytes)


def zarr_obstore_download(endpoint: str, bucket: str, key: str, nbytes: int, warm: bool = True):
    return _zarr_download("obstore", endpoint, bucket, key, nbytes, warm)


def zarr_obstore_row(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    return _zarr_read("obstore", endpoint, bucket, key, lambda a: a[shape[0] // 3])


def zarr_obstore_column(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    return _zarr_read("obstore", endpoint, bucket, key, lambda a: a[:, shape[1] // 3])


def zarr_obstore_points(endpoint: str, bucket: str, key: str, nbytes: int, shape: list[int]):
    points = _points(shape)
    return _zarr_read("obstore", endpoint, bucket, key, lambda a: a.vindex[points])


LIBRARIES = ("ccstore", "cottoncandy", "s3fs", "obstore", "boto3", "zarr_fsspec", "zarr_obstore")
