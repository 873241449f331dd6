"""Hypothesis round-trips: every fixed-size dtype, shape, order, chunk shape and codec."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from strategies import COMPRESSIONS, arrays, chunk_shapes

import ccstore


def _same(got: np.ndarray, want: np.ndarray) -> None:
    assert type(got) is np.ndarray
    assert got.dtype == want.dtype and got.dtype.names == want.dtype.names
    assert got.shape == want.shape
    assert got.tobytes(order="A") == want.tobytes(order="A")
    if want.ndim > 1 and want.flags.f_contiguous and not want.flags.c_contiguous:
        assert got.flags.f_contiguous


@given(data=st.data(), array=arrays(), compression=st.sampled_from(COMPRESSIONS))
def test_array_roundtrip(data, array, compression):
    store = ccstore.open("memory://")
    chunks = data.draw(chunk_shapes(array.shape))
    store.put("a", array, chunks=chunks, compression=compression)
    _same(store.load("a"), array)
    lazy = store["a"]
    assert (lazy.shape, lazy.dtype, lazy.order) == (
        array.shape,
        array.dtype,
        "F" if array.ndim > 1 and not array.flags.c_contiguous else "C",
    )
    _same(np.asarray(lazy), array)


@given(value=st.binary(max_size=3000), compression=st.sampled_from(COMPRESSIONS))
def test_bytes_roundtrip(value, compression):
    store = ccstore.open("memory://", compression=compression, chunk_bytes=256)
    store["b"] = value
    assert store["b"] == value


@given(value=st.text(max_size=500))
def test_text_roundtrip(value):
    store = ccstore.open("memory://")
    store["t"] = value
    assert store["t"] == value


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(value=json_values)
def test_json_roundtrip(value):
    store = ccstore.open("memory://")
    store["j"] = value
    assert store["j"] == value
    assert repr(store["j"]) == repr(value)  # -0.0 vs 0.0, int vs float preserved
