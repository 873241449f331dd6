"""Hypothesis strategies shared by the round-trip and slicing tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

COMPRESSIONS = [None, "zstd", "blosc", "lz4", "gzip"]

scalar_dtypes = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="="),
    hnp.unsigned_integer_dtypes(endianness="="),
    hnp.floating_dtypes(endianness="=", sizes=(16, 32, 64)),
    hnp.complex_number_dtypes(endianness="="),
    hnp.datetime64_dtypes(endianness="="),
    hnp.timedelta64_dtypes(endianness="="),
    hnp.byte_string_dtypes(endianness="=", min_len=1, max_len=6),
    hnp.unicode_string_dtypes(endianness="=", min_len=1, max_len=4),
    hnp.integer_dtypes(endianness=">"),
    hnp.floating_dtypes(endianness=">", sizes=(32, 64)),
)
any_dtypes = st.one_of(
    scalar_dtypes,
    hnp.array_dtypes(scalar_dtypes, min_size=1, max_size=3),
)


@st.composite
def arrays(draw, dtype=any_dtypes, max_dims=4, max_side=9):
    """An array of any fixed-size dtype and 0-4 dims (zero-length axes included), C or F."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side))
    array = draw(hnp.arrays(draw(dtype) if not isinstance(dtype, np.dtype) else dtype, shape))
    if draw(st.booleans()):
        array = np.asfortranarray(array)
    return array


@st.composite
def chunk_shapes(draw, shape):
    return tuple(draw(st.integers(1, max(n, 1) + 1)) for n in shape)


@st.composite
def basic_selections(draw, shape):
    """Any numpy basic index: ints (negative too), slices with any step, Ellipsis, newaxis."""
    parts = []
    for n in shape:
        choice = draw(st.integers(0, 5))
        if choice == 0 and n > 0:
            parts.append(draw(st.integers(-n, n - 1)))
        elif choice == 1:
            parts.append(slice(None))
        else:
            start = draw(st.none() | st.integers(-n - 2, n + 2))
            stop = draw(st.none() | st.integers(-n - 2, n + 2))
            step = draw(st.none() | st.integers(-4, 4).filter(bool))
            parts.append(slice(start, stop, step))
    cut = draw(st.integers(0, len(parts)))
    parts = parts[:cut]  # trailing axes left implicit
    for _ in range(draw(st.integers(0, 2))):
        parts.insert(draw(st.integers(0, len(parts))), None)
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), Ellipsis)
    return tuple(parts) if len(parts) != 1 or draw(st.booleans()) else parts[0]


@st.composite
def advanced_selections(draw, shape):
    """Integer arrays / lists / boolean masks (one or several axes) mixed with basic indices."""
    parts = []
    for n in shape:
        choice = draw(st.integers(0, 5))
        if choice <= 1 and n > 0:
            size = draw(st.integers(0, 5))
            idx = draw(st.lists(st.integers(-n, n - 1), min_size=size, max_size=size))
            parts.append(idx if draw(st.booleans()) else np.array(idx, dtype=np.intp))
        elif choice == 2:
            parts.append(np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), bool))
        elif choice == 3 and n > 0:
            parts.append(draw(st.integers(-n, n - 1)))
        else:
            step = draw(st.none() | st.integers(-3, 3).filter(bool))
            parts.append(slice(draw(st.none() | st.integers(-n, n)), None, step))
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), None)
    return tuple(parts)
