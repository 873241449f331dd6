"""S3 benchmark operations: what they share, and which module holds each library's.

An operation is a function ``<library>_<workload>`` that harness.measure runs in a fresh
process. ``MODULE_OF`` names the module holding each library's operations: s3_peers_boto3
(ccstore, cottoncandy and plain boto3, the libraries on boto3's client), s3_peers_s3fs_obstore
(s3fs + numpy, obstore) and s3_peers_zarr (zarr over s3fs's and obstore's clients);
``operation`` gives bench_s3 an operation's ``"module:function"``, or None for a workload the
library lacks. This module holds the constants and ``_`` helpers those modules share and
imports none of them at import time; no module imports a peer library outside its functions
(the peers live in their own virtualenvs, see envs.py; bench_s3's process needs numpy alone).

Every operation takes the endpoint, bucket and key, does its setup outside the timer, times the
transfer only, and returns ``(seconds, extra)``. Each library is used the way its own
documentation recommends, with its transfer settings tuned where it has any. Every library's
client is built before the timer starts (ccstore and s3fs build theirs lazily, on the first
request, so they are built explicitly, without a request). The large transfers also make one
small request first (``warm``), so that every library starts with one connection open; the
run that counts requests passes ``warm=False``.

The batch workloads (``small_put_batch``, ``small_get_batch``) put and get the same small
arrays with ``CONCURRENCY`` objects in flight, each library in its own way of doing so:
ccstore's ``update`` / ``load_many``, s3fs's ``pipe`` / ``cat`` (``batch_size``), boto3's
client shared by a thread pool, obstore's coroutines gathered under a semaphore.
cottoncandy has no way to keep several objects in flight and sits these out.

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
import importlib
import math
import os
import time

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


LIBRARIES = ("ccstore", "cottoncandy", "s3fs", "obstore", "boto3", "zarr_fsspec", "zarr_obstore")
MODULE_OF = {
    "ccstore": "s3_peers_boto3",
    "cottoncandy": "s3_peers_boto3",
    "boto3": "s3_peers_boto3",
    "s3fs": "s3_peers_s3fs_obstore",
    "obstore": "s3_peers_s3fs_obstore",
    "zarr_fsspec": "s3_peers_zarr",
    "zarr_obstore": "s3_peers_zarr",
}


def operation(library: str, op: str) -> str | None:
    """``"module:function"`` of ``library``'s operation ``op`` (a workload: ``upload``,
    ``small_put``, ...), for harness.measure; None if the library has no such operation."""
    module, name = MODULE_OF[library], f"{library}_{op}"
    return f"{module}:{name}" if hasattr(importlib.import_module(module), name) else None
