"""A store used before ``os.fork`` works in the child: no worker thread or connection of the
parent's is inherited (multiprocessing forks by default on Linux before Python 3.14)."""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
import pytest

import ccstore

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

# what the child works on: a fork copies the parent's memory, this included
_PARENT: dict = {}


def _child_reads_and_writes(_: int) -> tuple[bool, bytes, bytes, bytes]:
    store = _PARENT["store"]
    # the parent's client (and its pooled connections) stay with the parent
    inherited = getattr(store.backend, "_client_instance", None) is not None
    x = store["a"]
    whole, row, column = np.asarray(x), x[700], x[:, 300]  # chunk and page reads
    store["b"] = _PARENT["array"] * 2  # a multipart upload where the backend has them
    return inherited, whole.tobytes(), row.tobytes(), column.tobytes()


def test_a_store_used_before_a_fork_reads_and_writes_in_the_child(backend):
    if backend.scheme == "memory":
        pytest.skip("a child's memory store is its own copy: nothing to see in the parent")
    store = ccstore.Store(backend, "fork", ccstore.StoreOptions(concurrency=3))
    array = np.random.default_rng(3).standard_normal((1500, 2048)).astype("f4")  # 12 MiB
    store.put("a", array, chunks=(512, 512))
    np.testing.assert_array_equal(store["a"][700], array[700])  # the parent's pools run
    np.testing.assert_array_equal(np.asarray(store["a"]), array)
    _PARENT.update(store=store, array=array)
    try:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            # without fresh pools the child's reads wait forever for threads it does not have
            inherited, whole, row, column = pool.apply_async(_child_reads_and_writes, (0,)).get(
                timeout=120
            )
    finally:
        _PARENT.clear()
    assert not inherited
    assert (whole, row, column) == (array.tobytes(), array[700].tobytes(), array[:, 300].tobytes())
    assert store.load("b").tobytes() == (array * 2).tobytes()  # and the parent carries on


def _child_reads_zarr(_: int) -> bytes:
    import zarr

    return zarr.open_array(_PARENT["zarr"], path="x", mode="r")[:].tobytes()


def test_a_zarr_store_used_before_a_fork_reads_in_the_child(tmp_path):
    import zarr

    from ccstore.zarr_store import ZarrStore

    store = ZarrStore(str(tmp_path))
    array = np.arange(10_000, dtype="f4").reshape(100, 100)
    zarr.create_array(store, name="x", shape=array.shape, chunks=(10, 10), dtype="f4")[:] = array
    assert zarr.open_array(store, path="x", mode="r")[:].tobytes() == array.tobytes()
    _PARENT["zarr"] = store
    try:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            assert pool.apply_async(_child_reads_zarr, (0,)).get(timeout=60) == array.tobytes()
    finally:
        _PARENT.clear()
