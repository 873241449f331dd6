"""Chunk regions as byte runs and as strided blocks of the array they live in."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from strategies import arrays, chunk_shapes

from ccstore.chunking import ChunkGrid, region_blocks, region_runs


@st.composite
def arrays_and_chunks(draw):
    array = draw(arrays(max_dims=4, max_side=7))
    return array, ChunkGrid(array.shape, draw(chunk_shapes(array.shape)))


@given(arrays_and_chunks())
def test_region_blocks_are_views_holding_a_chunks_bytes_in_order(case):
    array, grid = case
    order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    flat = memoryview(array.reshape(-1, order="A").view(np.uint8))
    for cid in range(grid.nchunks):
        region = grid.region(cid)
        blocks = region_blocks(array, region, order)
        part = array[(*region, Ellipsis)]  # 0-d stays an array
        expected = np.ascontiguousarray(part.T if order == "F" else part)
        assert b"".join(block.tobytes() for block in blocks) == expected.tobytes()
        assert b"".join(bytes(run) for run in region_runs(flat, array, region, order)) == (
            expected.tobytes()
        )
        for block in blocks:
            assert block.ndim == 2 and block.dtype == np.uint8
            assert block.size == 0 or np.shares_memory(block, array)


def test_a_square_chunk_of_a_matrix_is_one_block_of_rows():
    array = np.zeros((64, 48), "<f4")
    (block,) = region_blocks(array, (slice(16, 32), slice(8, 24)), "C")
    assert block.shape == (16, 64) and block.strides == (48 * 4, 1)
    (block,) = region_blocks(np.asfortranarray(array), (slice(16, 32), slice(8, 24)), "F")
    assert block.shape == (16, 64) and block.strides == (64 * 4, 1)
