"""S3 benchmark operations of s3fs + numpy and obstore, and the clients zarr's stores run over.

s3fs stores the large array as .npy (``np.save`` into ``fs.open``) and reads parts of it by
byte range after the header; obstore stores raw C-order bytes and reads parts with
``get_range`` / ``get_ranges``. ``_s3fs`` and ``_obstore`` build the clients s3_peers_zarr's
stores use too. See s3_peers for what every operation takes and returns.
"""

from __future__ import annotations

import io

import numpy as np
from s3_peers import (
    CONCURRENCY,
    REGION,
    _array,
    _column_starts,
    _keys,
    _point_starts,
    _read,
    _stored_nbytes,
    _timed,
)

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


def s3fs_small_put_batch(endpoint: str, bucket: str, prefix: str, count: int):
    """``pipe`` of {path: .npy bytes}, ``CONCURRENCY`` requests at a time (``batch_size``)."""
    fs, buffer = _s3fs(endpoint), io.BytesIO()
    np.save(buffer, np.arange(1024, dtype=np.float32))
    data = {f"{bucket}/{prefix}/{i}": buffer.getvalue() for i in range(count)}
    return _timed(lambda: fs.pipe(data, batch_size=CONCURRENCY))[0], {}


def s3fs_small_get_batch(endpoint: str, bucket: str, prefix: str, count: int):
    """``cat`` of the paths, ``CONCURRENCY`` requests at a time, then ``np.load`` of each."""
    fs, paths = _s3fs(endpoint), [f"{bucket}/{prefix}/{i}" for i in range(count)]

    def get():
        found = fs.cat(paths, batch_size=CONCURRENCY)
        return [np.load(io.BytesIO(found[path])) for path in paths]

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


def _obstore_gather(each, count: int) -> list:
    """``each(i)`` (a coroutine) for every i, ``CONCURRENCY`` at a time, in one event loop."""
    import asyncio

    async def run():
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int):
            async with limit:
                return await each(i)

        return await asyncio.gather(*(one(i) for i in range(count)))

    return asyncio.run(run())


def obstore_small_put_batch(endpoint: str, bucket: str, prefix: str, count: int):
    """``put_async`` gathered, ``CONCURRENCY`` in flight."""
    import obstore

    store, value = _obstore(endpoint, bucket), np.arange(1024, dtype=np.float32).tobytes()
    put = lambda i: obstore.put_async(store, f"{prefix}/{i}", value)
    return _timed(lambda: _obstore_gather(put, count))[0], {}


def obstore_small_get_batch(endpoint: str, bucket: str, prefix: str, count: int):
    import obstore

    store = _obstore(endpoint, bucket)

    async def get(i: int) -> np.ndarray:
        result = await obstore.get_async(store, f"{prefix}/{i}")
        return np.frombuffer(await result.bytes_async(), np.float32)

    return _timed(lambda: _obstore_gather(get, count))[0], {}


def obstore_list(endpoint: str, bucket: str, prefix: str, count: int):
    import obstore

    store = _obstore(endpoint, bucket)
    seconds, keys = _timed(lambda: obstore.list(store, prefix=prefix).collect())
    assert len(keys) == count, (len(keys), count)
    return seconds, {"keys": len(keys)}
