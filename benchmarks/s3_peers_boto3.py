"""S3 benchmark operations of ccstore, cottoncandy and plain boto3: the libraries on boto3's client.

ccstore through ``ccstore.open`` with unsigned payloads, cottoncandy 0.4.0 as its users run it
(``upload_raw_array`` / ``download_raw_array``: no partial reads, the whole array comes down),
boto3 with a tuned ``TransferConfig`` and a ranged GET per element for partial reads. See
s3_peers for what every operation takes and returns.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from s3_peers import (
    CONCURRENCY,
    REGION,
    _array,
    _column_starts,
    _keys,
    _point_starts,
    _points,
    _read,
    _stored_nbytes,
    _timed,
)

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


def ccstore_small_put_batch(endpoint: str, bucket: str, prefix: str, count: int):
    """``update``: ``CONCURRENCY`` objects in flight (the store's ``concurrency``)."""
    store, value = _ccstore(endpoint, bucket), np.arange(1024, dtype=np.float32)
    return _timed(lambda: store.update({f"{prefix}/{i}": value for i in range(count)}))[0], {}


def ccstore_small_get_batch(endpoint: str, bucket: str, prefix: str, count: int):
    store = _ccstore(endpoint, bucket)
    seconds, values = _timed(lambda: store.load_many(f"{prefix}/{i}" for i in range(count)))
    assert len(values) == count
    return seconds, {}


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


def boto3_small_put_batch(endpoint: str, bucket: str, prefix: str, count: int):
    """One client shared by ``CONCURRENCY`` threads, as boto3's docs advise for concurrency."""
    client, _ = _boto3(endpoint)
    value = np.arange(1024, dtype=np.float32).tobytes()

    def put(i: int) -> None:
        client.put_object(Bucket=bucket, Key=f"{prefix}/{i}", Body=value)

    def put_all():
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(put, range(count)))  # results taken: a failed put raises

    return _timed(put_all)[0], {}


def boto3_small_get_batch(endpoint: str, bucket: str, prefix: str, count: int):
    client, _ = _boto3(endpoint)

    def get(i: int) -> np.ndarray:
        body = client.get_object(Bucket=bucket, Key=f"{prefix}/{i}")["Body"].read()
        return np.frombuffer(body, np.float32)

    def get_all():
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            return list(pool.map(get, range(count)))

    return _timed(get_all)[0], {}


def boto3_list(endpoint: str, bucket: str, prefix: str, count: int):
    client, _ = _boto3(endpoint)
    pages = lambda: client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/"
    )
    seconds, keys = _timed(lambda: [o["Key"] for page in pages() for o in page.get("Contents", ())])
    assert len(keys) == count, (len(keys), count)
    return seconds, {"keys": len(keys)}
