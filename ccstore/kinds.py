"""Value kinds: how a Python value becomes named arrays in one object, and back.

Every kind is stored as one or more arrays so that one mechanism (chunks, codecs, checksums,
encryption) serves them all: an ndarray is itself; a sparse matrix is its component arrays;
bytes, text, JSON and pickles are a one-dimensional uint8 array of their serialized bytes.
"""

from __future__ import annotations

import json
import pickle
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import PickleNotAllowedError, UnsupportedValueError

__all__ = ["KINDS", "Encoded", "classify", "decode", "encode", "is_array_leaf"]

KINDS = ("array", "sparse", "json", "text", "bytes", "pickle")
_JSON_SCALARS = (str, int, float, bool, type(None))


@dataclass
class Encoded:
    """A value as arrays to store, plus the attributes needed to rebuild it."""

    kind: str
    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)


def _is_sparse(value: Any) -> bool:
    # scipy costs ~0.2 s and ~13 MiB to import; if nothing imported it, nothing is sparse.
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(value)


def is_array_leaf(value: Any) -> bool:
    """Values stored as their own object when they appear as leaves of a dict."""
    return isinstance(value, (np.ndarray, np.generic)) or _is_sparse(value)


def _is_plain_array(value: Any) -> bool:
    # Subclasses with extra state (masked arrays, np.matrix) would lose it: they are pickled.
    return type(value) in (np.ndarray, np.memmap)


def _is_json(value: Any, seen: set[int] | None = None) -> bool:
    """Whether JSON represents ``value`` exactly (exact types only: a tuple would become a list)."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        return True
    if kind not in (list, dict):
        return False
    seen = set() if seen is None else seen
    if id(value) in seen:
        return False
    seen.add(id(value))
    try:
        if kind is dict:
            return all(type(k) is str and _is_json(v, seen) for k, v in value.items())
        return all(_is_json(v, seen) for v in value)
    finally:
        seen.discard(id(value))


def classify(value: Any) -> str:
    """The kind ``value`` is stored as, or "tree" for a dict with array leaves."""
    if _is_plain_array(value) or isinstance(value, np.generic):
        return "array"
    if _is_sparse(value):
        return "sparse"
    if type(value) is bytes:
        return "bytes"
    if type(value) is str:
        return "text"
    if type(value) is dict and value and _has_array_leaf(value):
        return "tree"
    if _is_json(value):
        return "json"
    return "pickle"


def raw_nbytes(value: Any) -> int:
    """About how many bytes storing ``value`` encodes: its arrays' (a tree's: all its
    leaves'), a bytes or str value's length; 0 for JSON values and pickles, which are
    measured only by encoding them."""
    if isinstance(value, (np.ndarray, np.generic)):
        return int(value.nbytes)
    if _is_sparse(value):
        parts = ("data", "indices", "indptr", "row", "col", "offsets")
        return sum(int(getattr(value, name).nbytes) for name in parts if hasattr(value, name))
    if type(value) in (bytes, str):
        return len(value)
    if type(value) is dict:
        return sum(raw_nbytes(leaf) for leaf in value.values())
    return 0


def _has_array_leaf(tree: dict) -> bool:
    return any(is_array_leaf(v) or (type(v) is dict and _has_array_leaf(v)) for v in tree.values())


def _as_bytes_array(data: bytes) -> dict[str, np.ndarray]:
    return {"bytes": np.frombuffer(data, np.uint8)}


def encode(value: Any, key: str, *, allow_pickle: bool) -> Encoded:
    """Turn a (non-tree) value into arrays; raises UnsupportedValueError where it cannot."""
    kind = classify(value)
    if kind == "array":
        return _encode_array(value, key, allow_pickle)
    if kind == "sparse":
        return _encode_sparse(value)
    if kind == "bytes":
        return Encoded("bytes", _as_bytes_array(value))
    if kind == "text":
        return Encoded("text", _as_bytes_array(value.encode("utf-8", "surrogatepass")))
    if kind == "json":
        text = json.dumps(value, ensure_ascii=False, allow_nan=True, separators=(",", ":"))
        return Encoded("json", _as_bytes_array(text.encode("utf-8", "surrogatepass")))
    if kind == "tree":
        raise UnsupportedValueError(f"{key!r}: a dict with array leaves is stored per leaf")
    return _encode_pickle(value, key)


def _encode_pickle(value: Any, key: str) -> Encoded:
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:
        raise UnsupportedValueError(
            f"cannot store {type(value).__name__} under {key!r}: it is not an array, sparse "
            f"matrix, bytes, str or JSON value, and pickling it failed ({e})"
        ) from e
    return Encoded("pickle", _as_bytes_array(data))


def _encode_array(value: Any, key: str, allow_pickle: bool) -> Encoded:
    scalar = isinstance(value, np.generic)
    array = np.asarray(value)
    if array.dtype.hasobject:
        if not allow_pickle:
            raise PickleNotAllowedError(key, action="write")
        return _encode_pickle(value, key)
    if array.dtype.itemsize == 0:
        raise UnsupportedValueError(f"{key!r}: dtype {array.dtype} has no bytes to store")
    return Encoded("array", {"data": array}, {"scalar": True} if scalar else {})


_SPARSE_FIELDS = {
    "csr": ("data", "indices", "indptr"),
    "csc": ("data", "indices", "indptr"),
    "bsr": ("data", "indices", "indptr"),
    "dia": ("data", "offsets"),
}


def _encode_sparse(value: Any) -> Encoded:
    import scipy.sparse as sp

    fmt = value.format
    attrs = {
        "format": fmt,
        "container": "array" if isinstance(value, sp.sparray) else "matrix",
        "shape": [int(n) for n in value.shape],
    }
    if fmt in _SPARSE_FIELDS:
        arrays = {name: getattr(value, name) for name in _SPARSE_FIELDS[fmt]}
    else:  # coo stores itself; lil and dok go through coo and come back converted
        coo = value if fmt == "coo" else value.tocoo()
        coords = coo.coords if hasattr(coo, "coords") else (coo.row, coo.col)
        arrays = {"data": coo.data} | {f"coords{i}": c for i, c in enumerate(coords)}
    return Encoded("sparse", {k: np.asarray(v) for k, v in arrays.items()}, attrs)


def decode(
    kind: str, arrays: dict[str, np.ndarray], attrs: dict[str, Any], key: str, allow_pickle: bool
) -> Any:
    """Rebuild a value from its arrays and attributes."""
    if kind == "array":
        data = arrays["data"]
        return data[()] if attrs.get("scalar") else data
    if kind == "sparse":
        return _decode_sparse(arrays, attrs)
    payload = arrays["bytes"].tobytes()
    if kind == "bytes":
        return payload
    if kind == "text":
        return payload.decode("utf-8", "surrogatepass")
    if kind == "json":
        return json.loads(payload.decode("utf-8", "surrogatepass"))
    if kind == "pickle":
        if not allow_pickle:
            raise PickleNotAllowedError(key)
        return pickle.loads(payload)
    raise UnsupportedValueError(f"{key!r} has kind {kind!r}, which this ccstore cannot read")


def _decode_sparse(arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> Any:
    import scipy.sparse as sp

    fmt, shape = attrs["format"], tuple(attrs["shape"])
    cls = getattr(sp, f"{fmt}_{attrs['container']}")
    if fmt in _SPARSE_FIELDS:
        return cls(tuple(arrays[name] for name in _SPARSE_FIELDS[fmt]), shape=shape)
    coords = tuple(arrays[f"coords{i}"] for i in range(len(arrays) - 1))
    coo_cls = getattr(sp, f"coo_{attrs['container']}")
    coo = coo_cls((arrays["data"], coords), shape=shape)
    return coo if fmt == "coo" else coo.asformat(fmt)
