"""Read data written by cottoncandy, so its users can switch without migrating anything.

cottoncandy 0.4.0 (``upload_raw_array``) stores an array as its raw bytes, optionally gzip- or
numcodecs-compressed, with service metadata ``dtype`` (``array.dtype.str``), ``shape``
(comma-separated, empty for 0-d), ``order`` (``C``/``F``: the memory order of the bytes) and
``compression`` (``False``/``None``, ``gzip``, or a numcodecs id such as ``Zstd``); old objects
carry a boolean ``gzip`` flag instead. ``upload_npy_array`` stores ``.npy`` bytes. Sparse
matrices (``upload_sparse_array``) and chunked arrays (``upload_dask_array``) are prefixes of
raw arrays plus a plain-JSON ``metadata.json``. Everything here reads those layouts through the
backend protocol alone (``head`` metadata, ``read``); nothing writes them.
"""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import numcodecs
import numpy as np

from .backends.base import Backend, RangeByteRequest
from .errors import CorruptObjectError, KeyNotFoundError

__all__ = ["read_array_object", "read_prefix"]

_NPY_MAGIC = b"\x93NUMPY"


def read_array_object(backend: Backend, key: str) -> np.ndarray | None:
    """The array in a cottoncandy raw-array or ``.npy`` object, or None if it is neither."""
    meta = {k.lower(): v for k, v in backend.head(key).metadata.items()}
    if "dtype" in meta and ("shape" in meta or "order" in meta):
        # Some services (SeaweedFS) drop empty metadata values: a 0-d array's shape is "".
        return _raw_array(key, backend.read(key), {"shape": ""} | meta)
    head = backend.read(key, RangeByteRequest(0, len(_NPY_MAGIC)))
    if head == _NPY_MAGIC:
        return np.load(io.BytesIO(backend.read(key)), allow_pickle=False)
    return None


def _raw_array(key: str, body: bytes, meta: dict[str, str]) -> np.ndarray:
    try:
        dtype = np.dtype(meta["dtype"])
        shape = tuple(int(n) for n in meta["shape"].split(",")) if meta["shape"] else ()
        order = meta.get("order", "C")
        compression = meta.get("compression")
        if "gzip" in meta:  # objects from before the compression field
            compression = "gzip" if meta["gzip"].lower() == "true" else "False"
        if compression == "gzip":
            body = gzip.decompress(body)
        elif compression not in (None, "False", "None"):
            body = numcodecs.get_codec({"id": compression.lower()}).decode(body)
        out = np.empty(shape, dtype, order=order)
        flat = out.reshape(-1, order="A").view(np.uint8)
        if len(body) != flat.size:
            raise ValueError(f"{len(body)} bytes for {flat.size} expected")
        flat[:] = np.frombuffer(body, np.uint8)
        return out
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise CorruptObjectError(key, f"unreadable cottoncandy array ({e})") from None


def read_prefix(backend: Backend, prefix: str) -> Any:
    """A cottoncandy sparse matrix or chunked (dask) array stored below ``prefix``, or None."""
    try:
        metadata = json.loads(backend.read(f"{prefix}/metadata.json"))
    except (KeyNotFoundError, ValueError):
        return None
    if not isinstance(metadata, dict):
        return None
    if "type" in metadata and "attrs" in metadata:
        return _sparse(backend, prefix, metadata)
    if "dask" in metadata and "chunks" in metadata:
        return _chunked(backend, prefix, metadata)
    return None


def _part(backend: Backend, key: str) -> np.ndarray:
    array = read_array_object(backend, key)
    if array is None:
        raise CorruptObjectError(key, "expected a cottoncandy raw array")
    return array


def _sparse(backend: Backend, prefix: str, metadata: dict) -> Any:
    import scipy.sparse as sp

    parts = {name: _part(backend, f"{prefix}/{name}") for name in metadata["attrs"]}
    kind, shape = metadata["type"], tuple(metadata["shape"])
    if kind == "coo":
        return sp.coo_matrix((parts["data"], (parts["row"], parts["col"])), shape=shape)
    if kind == "dia":
        return sp.dia_matrix((parts["data"], parts["offsets"]), shape=shape)
    if kind in ("csr", "csc", "bsr"):
        cls = getattr(sp, f"{kind}_matrix")
        return cls((parts["data"], parts["indices"], parts["indptr"]), shape=shape)
    raise CorruptObjectError(prefix, f"unknown cottoncandy sparse type {kind!r}")


def _chunked(backend: Backend, prefix: str, metadata: dict) -> np.ndarray:
    """Assemble an ``upload_dask_array`` layout (parts at chunk coordinates) into one array."""
    chunks = [list(map(int, sizes)) for sizes in metadata["chunks"]]
    out = np.empty(tuple(metadata["shape"]), np.dtype(metadata["dtype"]))
    starts = [np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int) for sizes in chunks]
    for coords, name in metadata["dask"]:
        # Part names are bucket-relative (".../pt0000"); the parts sit directly below prefix.
        part = _part(backend, f"{prefix}/{name.rsplit('/', 1)[-1]}")
        region = tuple(
            slice(int(starts[d][c]), int(starts[d][c]) + part.shape[d])
            for d, c in enumerate(coords)
        )
        out[region] = part
    return out
