"""Page checksums: a CRC-32C for every 64 KiB page of an uncoded chunk, so that part of a
chunk can be read, and verified, without the rest of it.

A chunk's index entry carries one CRC for the whole chunk, which a reader can check only
after fetching all of it. For a row of a 4 MiB chunk that is 4 KiB, the chunk CRC alone would
make every partial read a whole-chunk read. Objects whose arrays are stored uncoded and
unencrypted therefore also carry a page table (docs/format.md): one ``<u4`` CRC per page of
each chunk's stored bytes, chunks in index order. A reader reads the pages a selection
touches, checks each against its table entry, and never returns a byte it has not checked. The
entries of a chunk must combine into the chunk's index CRC (``chunk_crc``), which ties the
table to the index read when the object was opened.
Compressed and encrypted chunks have no table: they decode (or authenticate) only whole.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import crc32c
import numpy as np

__all__ = [
    "PAGE_BYTES",
    "PAGE_ENTRY",
    "ChunkChecksums",
    "chunk_crc",
    "page_runs",
    "touched_pages",
]

PAGE_BYTES = 64 << 10
PAGE_ENTRY = np.dtype("<u4")

# Up to this many selected elements in one chunk, the pages they touch are found element by
# element; larger selections read the pages between their first and last element.
_EXACT_ELEMENTS = 1 << 16


class ChunkChecksums:
    """The CRC-32C of a chunk's stored bytes and, with ``page_bytes``, of each page of them,
    from the bytes fed to ``update`` in order."""

    def __init__(self, page_bytes: int | None = None) -> None:
        self._crc = 0
        self._nbytes = 0
        self._page_bytes = page_bytes
        self._pages: list[int] = []
        self._page_crc = 0
        self._page_fill = 0

    def update(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        size = self._page_bytes
        if size is None:
            self._crc = crc32c.crc32c(view, self._crc)
            return
        self._nbytes += len(view)
        while len(view):
            n = min(size - self._page_fill, len(view))
            self._page_crc = crc32c.crc32c(view[:n], self._page_crc)
            self._page_fill += n
            view = view[n:]
            if self._page_fill == size:
                self._pages.append(self._page_crc)
                self._page_crc = self._page_fill = 0

    @property
    def crc(self) -> int:
        """The whole chunk's CRC (with pages: combined from theirs, one pass over the bytes)."""
        if self._page_bytes is None:
            return self._crc
        return chunk_crc(self.page_crcs(), self._nbytes, self._page_bytes)

    def page_crcs(self) -> list[int]:
        """Every page's CRC, the last (shorter) page included; call once all bytes are fed."""
        if self._page_fill:
            self._pages.append(self._page_crc)
            self._page_crc = self._page_fill = 0
        return self._pages


def chunk_crc(page_crcs: Iterable[int], nbytes: int, page_bytes: int) -> int:
    """The CRC-32C of a whole chunk of ``nbytes``, from the CRCs of its pages.

    A reader checks a chunk's page table against the chunk's index entry with it, so page
    checksums are as much a part of the object a layout was read from as the index: a table
    from another version of the object (rewritten since it was opened) does not pass.
    CRCs are affine over GF(2): crc(A + B) = M(len(B)) crc(A) ^ crc(B), where M(n) is the
    linear map a CRC register undergoes through n zero bytes (``_shift_tables``).
    """
    pages = np.asarray(page_crcs, np.uint32).tolist()
    if not pages:
        return 0
    crc, (t0, t1, t2, t3) = 0, _shift_tables(page_bytes)
    for page in pages[:-1]:
        crc = t0[crc & 0xFF] ^ t1[crc >> 8 & 0xFF] ^ t2[crc >> 16 & 0xFF] ^ t3[crc >> 24] ^ page
    t0, t1, t2, t3 = _shift_tables(nbytes - (len(pages) - 1) * page_bytes)
    return t0[crc & 0xFF] ^ t1[crc >> 8 & 0xFF] ^ t2[crc >> 16 & 0xFF] ^ t3[crc >> 24] ^ pages[-1]


@functools.lru_cache(maxsize=16)
def _shift_tables(length: int) -> tuple[list[int], ...]:
    """M(length) as four byte tables: M v = T0[byte 0 of v] ^ T1[byte 1] ^ T2[byte 2] ^ T3[byte 3].

    crc32c(zeros, v) = M v ^ crc32c(zeros, 0) (the register update is linear; the library's
    pre- and post-inversion add a constant), which gives M's columns from 32 CRCs of zeros.
    """
    zeros = bytes(length)
    base = crc32c.crc32c(zeros)
    columns = [crc32c.crc32c(zeros, 1 << bit) ^ base for bit in range(32)]
    values = np.arange(256)
    tables = []
    for k in range(4):
        table = np.zeros(256, np.uint32)
        for bit in range(8):
            table ^= np.where(values >> bit & 1, columns[8 * k + bit], 0).astype(np.uint32)
        tables.append(table.tolist())
    return tuple(tables)


def touched_pages(
    shape: Sequence[int],
    order: str,
    itemsize: int,
    page_bytes: int,
    selections: Iterable[tuple[tuple, tuple[int, ...] | None]],
) -> np.ndarray:
    """Which pages of a stored chunk hold the elements the selections pick: a boolean per page.

    ``shape`` is the chunk's, its bytes in memory ``order``. A selection is ``(chunk_sel,
    transpose)`` as in indexing.ChunkTask: ``chunk.transpose(transpose)[chunk_sel]``, in
    numpy's indexing semantics (slices, and integer arrays broadcast together).
    """
    nbytes = math.prod(shape) * itemsize
    touched = np.zeros(-(-nbytes // page_bytes), bool)
    ndim = len(shape)
    if ndim == 0 or itemsize > page_bytes:
        touched[:] = True
        return touched
    strides = [math.prod(shape[k + 1 :] if order == "C" else shape[:k]) for k in range(ndim)]
    for chunk_sel, transpose in selections:
        axes = transpose if transpose is not None else tuple(range(ndim))
        tshape = [shape[a] for a in axes]
        tstrides = [strides[a] for a in axes]
        count = _selected_count(chunk_sel, tshape)
        if count == 0:
            continue
        if count <= _EXACT_ELEMENTS:
            first = _offsets(chunk_sel, tshape, tstrides) * itemsize
            touched[first // page_bytes] = True
            touched[(first + itemsize - 1) // page_bytes] = True
        else:
            low = high = 0
            for sel, n, stride in zip(chunk_sel, tshape, tstrides):
                lo, hi = _bounds(sel, n)
                low, high = low + lo * stride, high + hi * stride
            last_byte = (high + 1) * itemsize - 1
            touched[low * itemsize // page_bytes : last_byte // page_bytes + 1] = True
    return touched


def _offsets(chunk_sel: tuple, shape: Sequence[int], strides: Sequence[int]) -> np.ndarray:
    """The element offset of every element ``chunk_sel`` picks, in numpy's semantics."""
    ndim = len(shape)
    arrays = [not isinstance(sel, slice) for sel in chunk_sel]
    if all(arrays):  # advanced indexing: the index arrays broadcast together
        offsets = sum(np.asarray(sel, np.int64) * stride for sel, stride in zip(chunk_sel, strides))
    elif not any(arrays):  # basic indexing: an outer product of the slices
        offsets = sum(
            (np.arange(n, dtype=np.int64)[sel] * stride).reshape(
                [-1 if k == i else 1 for k in range(ndim)]
            )
            for i, (sel, n, stride) in enumerate(zip(chunk_sel, shape, strides))
        )
    else:  # let numpy place the dimensions: index each axis's offsets the same way
        offsets = sum(
            np.broadcast_to(_axis_offsets(n, stride, i, ndim), shape)[chunk_sel]
            for i, (n, stride) in enumerate(zip(shape, strides))
        )
    return np.asarray(offsets, np.int64).reshape(-1)


def _axis_offsets(n: int, stride: int, axis: int, ndim: int) -> np.ndarray:
    """Element offsets along one axis, shaped to broadcast along that axis only."""
    return (np.arange(n, dtype=np.int64) * stride).reshape(
        [-1 if k == axis else 1 for k in range(ndim)]
    )


def _selected_count(chunk_sel: tuple, shape: Sequence[int]) -> int:
    arrays = [np.shape(s) for s in chunk_sel if not isinstance(s, slice)]
    count = math.prod(
        len(range(*s.indices(n))) for s, n in zip(chunk_sel, shape) if isinstance(s, slice)
    )
    return count * math.prod(np.broadcast_shapes(*arrays)) if arrays else count


def _bounds(sel: Any, n: int) -> tuple[int, int]:
    """The smallest and largest index a (non-empty) axis selection picks."""
    if isinstance(sel, slice):
        picked = range(*sel.indices(n))
        return min(picked[0], picked[-1]), max(picked[0], picked[-1])
    values = np.asarray(sel)
    return int(values.min()), int(values.max())


def page_runs(touched: np.ndarray, gap_pages: int) -> list[tuple[int, int]]:
    """The touched pages as ranges [first, stop), merged across gaps of up to ``gap_pages``."""
    pages = np.flatnonzero(touched)
    if not len(pages):
        return []
    breaks = np.flatnonzero(np.diff(pages) > gap_pages + 1)
    starts = np.concatenate(([pages[0]], pages[breaks + 1]))
    stops = np.concatenate((pages[breaks], [pages[-1]])) + 1
    return list(zip(starts.tolist(), stops.tolist()))
