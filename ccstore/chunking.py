"""Chunk shapes: the automatic choice, and the regular grid that maps chunks to array regions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "ChunkGrid",
    "auto_chunks",
    "normalize_chunks",
    "region_blocks",
    "region_runs",
]

DEFAULT_CHUNK_BYTES = 4 << 20


def auto_chunks(shape: Sequence[int], itemsize: int, target: int = DEFAULT_CHUNK_BYTES) -> tuple:
    """A chunk shape of at most ``target`` bytes with the array's proportions.

    Axes are halved in turn, as zarr does, so a row, a column or a block of a 2-d array costs
    about the same number of chunks: the best default when the access pattern is unknown.
    """
    chunks = [max(int(n), 1) for n in shape]
    if not chunks:
        return ()
    axis = 0
    while math.prod(chunks) * max(itemsize, 1) > target and any(c > 1 for c in chunks):
        if chunks[axis] > 1:
            chunks[axis] = -(-chunks[axis] // 2)
        axis = (axis + 1) % len(chunks)
    return tuple(chunks)


def normalize_chunks(
    chunks: int | Sequence[int] | None, shape: Sequence[int], itemsize: int, target: int
) -> tuple[int, ...]:
    """Validate a user's ``chunks=`` (None for automatic, an int for every axis, or a tuple)."""
    if chunks is None:
        return auto_chunks(shape, itemsize, target)
    if isinstance(chunks, (int, np.integer)):
        chunks = (int(chunks),) * len(shape)
    chunks = tuple(int(c) for c in chunks)
    if len(chunks) != len(shape):
        raise ValueError(f"chunks {chunks} has {len(chunks)} axes but the array has {len(shape)}")
    if any(c < 1 for c in chunks):
        raise ValueError(f"chunk sizes must be positive, got {chunks}")
    # A chunk larger than its axis only wastes nothing; clip so the grid stays minimal.
    return tuple(min(c, max(n, 1)) for c, n in zip(chunks, shape))


@dataclass(frozen=True)
class ChunkGrid:
    """A regular grid of ``chunks``-shaped blocks over ``shape`` (edge chunks are cut short)."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(-(-n // c) for n, c in zip(self.shape, self.chunks))

    @property
    def nchunks(self) -> int:
        return math.prod(self.grid_shape)

    def coords(self, index: int) -> tuple[int, ...]:
        """Grid coordinates of the chunk with linear (C-order) ``index``."""
        return tuple(int(i) for i in np.unravel_index(index, self.grid_shape)) if self.shape else ()

    def region(self, index: int) -> tuple[slice, ...]:
        """The array region the chunk covers."""
        return tuple(
            slice(i * c, min((i + 1) * c, n))
            for i, c, n in zip(self.coords(index), self.chunks, self.shape)
        )

    def chunk_shape(self, index: int) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.region(index))


def region_runs(
    flat: memoryview, array: np.ndarray, region: tuple[slice, ...], order: str
) -> list[memoryview]:
    """The contiguous byte runs of ``array[region]`` inside ``flat`` (the bytes of the
    contiguous ``array`` in its memory ``order``), in that order: a chunk's raw bytes."""
    shape, bounds = list(array.shape), list(region)
    if order == "F":
        shape, bounds = shape[::-1], bounds[::-1]
    if not shape:
        return [flat]
    itemsize = array.dtype.itemsize
    strides = [itemsize * int(np.prod(shape[i + 1 :])) for i in range(len(shape))]
    k = len(shape) - 1
    while k > 0 and bounds[k].start == 0 and bounds[k].stop == shape[k]:
        k -= 1  # axes the region spans whole fold into one longer run
    length = (bounds[k].stop - bounds[k].start) * strides[k]
    starts = np.zeros(1, dtype=np.int64) + bounds[k].start * strides[k]
    for axis in range(k - 1, -1, -1):
        offsets = np.arange(bounds[axis].start, bounds[axis].stop, dtype=np.int64) * strides[axis]
        starts = (offsets[:, None] + starts[None, :]).reshape(-1)
    return [flat[s : s + length] for s in starts.tolist()]


def region_blocks(array: np.ndarray, region: tuple[slice, ...], order: str) -> list[np.ndarray]:
    """The bytes of ``array[region]`` in memory ``order``, as 2-d uint8 views into ``array``
    whose rows are contiguous runs: a chunk's raw bytes in as few strided blocks as the
    region allows (one for a 2-d array, where region_runs gives a run per row). ``array`` is
    contiguous in ``order``."""
    block, full = array[(*region, Ellipsis)], array.shape  # 0-d stays a view
    if order == "F":
        block, full = block.T, full[::-1]  # the transpose of an F-ordered array is C-ordered
    if block.ndim == 0:
        block, full = block.reshape(1), (1,)
    k = block.ndim - 1
    while k > 0 and block.shape[k] == full[k]:
        k -= 1  # axes the region spans whole fold into one longer run
    rows = block.reshape(*block.shape[:k], -1).view(np.uint8)
    if rows.ndim == 1:
        return [rows.reshape(1, -1)]
    return [rows[index] for index in np.ndindex(*rows.shape[:-2])]
