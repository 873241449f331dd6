"""S3 benchmark operations of zarr 3: ``FsspecStore`` over s3fs and ``ObjectStore`` over obstore.

The large array is stored chunked as ccstore stores it (ccstore's chunk shape, uncompressed),
one object per chunk, and read in whole chunks; a zarr array is no store of small objects, so
there are no small-object or listing operations. ``zarr_store`` builds the stores, for
bench_zarr too. See s3_peers for what every operation takes and returns.
"""

from __future__ import annotations

from s3_peers import CONCURRENCY, _array, _points, _read, _stored_nbytes, _timed
from s3_peers_s3fs_obstore import _obstore, _s3fs


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
