"""Fetch, verify and decode the chunks of a stored object: coalesced, concurrent, bounded."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from .backends.base import Backend, RangeByteRequest, scatter
from .chunking import region_blocks, region_runs
from .codecs import can_decode_into
from .errors import CorruptObjectError
from .format import (
    MAGIC,
    ArrayLayout,
    ObjectLayout,
    checksum,
    decode_chunk,
    decode_chunk_into,
    decrypt_chunk_into,
    verify_chunk,
)
from .options import StoreOptions
from .transfer import Progress, ProgressOption, Span, ThreadScratch, coalesce, run_all

__all__ = ["IOContext", "read_array", "read_arrays", "read_chunks", "verify_object"]

ChunkSink = Callable[[int, np.ndarray], None]


@dataclass(frozen=True)
class IOContext:
    """What reading needs from a store: the backend, an executor and the transfer options."""

    backend: Backend
    executor: Executor | None
    options: StoreOptions


def read_chunks(
    ctx: IOContext,
    layout: ObjectLayout,
    array: ArrayLayout,
    chunk_ids: Iterable[int],
    sink: ChunkSink,
    progress: Progress | None = None,
) -> None:
    """Call ``sink(chunk_id, decoded_chunk)`` for every listed chunk, fetching only their bytes.

    Neighbouring chunks are merged into one request when the gap between them is at most
    ``coalesce_gap``; requests run ``concurrency`` at a time; each chunk is decoded in the
    thread that fetched it. Chunks already in the layout's cached tail cost no request.
    """
    itemsize = array.dtype.itemsize

    def deliver(cid: int, data: memoryview) -> None:
        chunk = decode_chunk(layout, array, cid, data)
        sink(cid, chunk)
        if progress is not None:
            progress.update(chunk.size * itemsize)

    _fetch_stored(ctx, layout, array, chunk_ids, deliver)


def verify_object(ctx: IOContext, layout: ObjectLayout) -> None:
    """Check the magic bytes and every chunk's checksum (and authentication tag, if the
    layout is encrypted and unlocked) with bounded memory: chunks are fetched like any read,
    verified and dropped, never decoded."""
    magic = layout.cached(0, len(MAGIC))
    if magic is None:
        magic = ctx.backend.read(layout.key, RangeByteRequest(0, len(MAGIC)))
    if bytes(magic) != MAGIC:
        raise CorruptObjectError(layout.key, "bad magic bytes at the start of the object")
    for array in layout.arrays.values():

        def check(cid: int, data: memoryview, array: ArrayLayout = array) -> None:
            verify_chunk(layout, array, cid, data, authenticate=layout.cipher is not None)

        _fetch_stored(ctx, layout, array, range(array.grid.nchunks), check)


def _fetch_stored(
    ctx: IOContext,
    layout: ObjectLayout,
    array: ArrayLayout,
    chunk_ids: Iterable[int],
    deliver: Callable[[int, memoryview], None],
) -> None:
    """Call ``deliver(chunk_id, stored_bytes)`` for the listed chunks: coalesced, concurrent,
    each stored chunk valid only during its call (it lives in a reused per-thread buffer)."""
    wanted, cached = [], []
    for cid in chunk_ids:
        start, end = layout.chunk_range(array, cid)
        data = layout.cached(start, end)
        if data is None:
            wanted.append((cid, start, end))
        else:
            cached.append((cid, data))
    for cid, data in cached:
        deliver(cid, data)
    options = ctx.options
    spans = coalesce(wanted, options.coalesce_gap, options.max_request_bytes)

    def fetch(span: Span) -> None:
        view = _SPANS.get(span.end - span.start)
        if ctx.backend.read_into(layout.key, span.start, view) != len(view):
            raise CorruptObjectError(layout.key, "object is shorter than its chunk index says")
        for cid, start, end in span.chunks:
            deliver(cid, view[start - span.start : end - span.start])

    run_all(ctx.executor, fetch, spans)


# Stored chunks land here; sinks copy them out before the thread's next request.
_SPANS = ThreadScratch()


def read_array(
    ctx: IOContext, layout: ObjectLayout, array: ArrayLayout, progress: ProgressOption = None
) -> np.ndarray:
    """The whole array, downloaded in parallel straight into one preallocated result."""
    out = np.empty(array.shape, array.dtype, order=array.order)
    grid = array.grid

    def place(cid: int, chunk: np.ndarray) -> None:
        out[grid.region(cid)] = chunk

    with Progress(progress, out.nbytes, layout.key) as bar:
        if out.size == 0:
            return out
        if not array.codecs and not layout.encrypted:
            # however many runs: backends fill small destinations from a small bounce buffer,
            # so no chunk-sized scratch per thread is held
            _scatter_raw_chunks(ctx, layout, array, out, bar)
            return out
        runs = _max_runs(out, array)
        if array.codecs and runs == 1 and can_decode_into(array.codecs):
            _chunks_into_place(ctx, layout, array, out, bar, _decode_into)
        elif array.codecs or runs > _MAX_DECRYPT_RUNS:
            read_chunks(ctx, layout, array, range(grid.nchunks), place, bar)
        else:
            _chunks_into_place(ctx, layout, array, out, bar, decrypt_chunk_into)
    return out


# Decrypting straight into the result costs a few microseconds of Python per contiguous run
# of a chunk in it; past this many runs, decrypting into a warm scratch buffer and one numpy
# copy into place are cheaper (a 4 MiB copy takes ~0.3 ms).
_MAX_DECRYPT_RUNS = 16


def _max_runs(out: np.ndarray, array: ArrayLayout) -> int:
    """How many contiguous runs of ``out`` a chunk of ``array`` makes at most (the first
    chunk has the most: edge chunks are smaller)."""
    flat = memoryview(out.reshape(-1, order="A").view(np.uint8))
    return len(region_runs(flat, out, array.grid.region(0), array.order))


def _decode_into(
    layout: ObjectLayout, array: ArrayLayout, cid: int, data: memoryview, runs: list[memoryview]
) -> None:
    (run,) = runs
    decode_chunk_into(layout, array, cid, data, run)


def _chunks_into_place(
    ctx: IOContext,
    layout: ObjectLayout,
    array: ArrayLayout,
    out: np.ndarray,
    bar: Progress,
    write: Callable[[ObjectLayout, ArrayLayout, int, memoryview, list[memoryview]], None],
) -> None:
    """Have ``write`` verify each stored chunk and turn it into its runs of ``out`` (decrypt or
    decode straight into place: no temporary result, no copy)."""
    grid = array.grid
    flat = memoryview(out.reshape(-1, order="A").view(np.uint8))

    def deliver(cid: int, data: memoryview) -> None:
        runs = region_runs(flat, out, grid.region(cid), array.order)
        write(layout, array, cid, data, runs)
        bar.update(sum(len(run) for run in runs))

    _fetch_stored(ctx, layout, array, range(grid.nchunks), deliver)


def _scatter_raw_chunks(
    ctx: IOContext, layout: ObjectLayout, array: ArrayLayout, out: np.ndarray, bar: Progress
) -> None:
    """Read uncoded chunks straight into their place in ``out`` (one scatter read per span).

    A raw chunk's bytes are its region of the array in the array's memory order, so the
    strided blocks of that region in ``out`` can be the destinations of the read itself: no
    scratch buffer and no copy. CRCs are taken from the bytes as they are placed.
    """
    grid = array.grid
    chunks = []
    for cid in range(grid.nchunks):
        start, end = layout.chunk_range(array, cid)
        chunks.append((cid, start, end))
    options = ctx.options
    spans = coalesce(chunks, options.coalesce_gap, options.max_request_bytes)
    entries = layout.index[array.first_chunk : array.first_chunk + grid.nchunks]

    def fetch(span: Span) -> None:
        buffers, sizes, position = [], [], span.start
        for cid, start, end in span.chunks:
            if start > position:  # a gap merged into the span: read and drop
                buffers.append(memoryview(bytearray(start - position)))
            blocks = region_blocks(out, grid.region(cid), array.order)
            sizes.append(sum(block.nbytes for block in blocks))
            buffers.extend(memoryview(block) for block in blocks)
            position = end
        checksums = _SpanChecksums(span)
        cached = layout.cached(span.start, span.end)
        if cached is not None:
            scatter(cached, buffers, checksums)
        elif (
            ctx.backend.read_scatter(layout.key, span.start, buffers, checksums)
            != span.end - span.start
        ):
            raise CorruptObjectError(layout.key, "object is shorter than its chunk index says")
        for (cid, _, _), crc, size in zip(span.chunks, checksums.crcs, sizes):
            if crc != entries[cid]["checksum"]:
                raise CorruptObjectError(
                    layout.key, f"checksum mismatch in chunk {cid} of {array.name!r}"
                )
            bar.update(size)

    run_all(ctx.executor, fetch, spans)


class _SpanChecksums:
    """The CRC of every chunk of a span, taken from the bytes as a read places them (an
    ``Observer``): they are still in cache then, where checking them in place would read
    the whole result from memory again."""

    def __init__(self, span: Span) -> None:
        self._starts = [start - span.start for _, start, _ in span.chunks]
        self._ends = [end - span.start for _, _, end in span.chunks]
        self.crcs = [0] * len(self._starts)

    def __call__(self, offset: int, data: memoryview) -> None:
        if offset == 0:  # the read started (over)
            self.crcs = [0] * len(self._starts)
        end = offset + len(data)
        i = max(bisect.bisect_right(self._starts, offset) - 1, 0)
        while i < len(self._starts) and self._starts[i] < end:
            lo, hi = max(self._starts[i], offset), min(self._ends[i], end)
            if lo < hi:
                self.crcs[i] = checksum(data[lo - offset : hi - offset], self.crcs[i])
            i += 1


def read_arrays(
    ctx: IOContext, layout: ObjectLayout, progress: ProgressOption = None
) -> dict[str, np.ndarray]:
    """Every array of an object, by name."""
    return {name: read_array(ctx, layout, a, progress) for name, a in layout.arrays.items()}
