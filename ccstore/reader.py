"""Fetch, verify and decode the chunks of a stored object: coalesced, concurrent, bounded."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from .backends.base import Backend, RangeByteRequest
from .chunking import region_runs
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
from .transfer import Progress, ProgressOption, Span, coalesce, run_all

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
        view = _scratch(span.end - span.start)
        if ctx.backend.read_into(layout.key, span.start, view) != len(view):
            raise CorruptObjectError(layout.key, "object is shorter than its chunk index says")
        for cid, start, end in span.chunks:
            deliver(cid, view[start - span.start : end - span.start])

    run_all(ctx.executor, fetch, spans)


_local = threading.local()


def _scratch(nbytes: int) -> memoryview:
    """A per-thread buffer reused across requests.

    Fresh buffers cost a page fault per 4 KiB on first touch, which halves read throughput;
    a warm buffer does not. Sinks copy chunks out before the thread's next request.
    """
    buffer = getattr(_local, "buffer", None)
    if buffer is None or len(buffer) < nbytes:
        buffer = _local.buffer = bytearray(nbytes)
    return memoryview(buffer)[:nbytes]


def read_array(
    ctx: IOContext, layout: ObjectLayout, array: ArrayLayout, progress: ProgressOption = None
) -> np.ndarray:
    """The whole array, downloaded in parallel straight into one preallocated result."""
    out = np.empty(array.shape, array.dtype, order=array.order)
    grid = array.grid

    def place(cid: int, chunk: np.ndarray) -> None:
        out[grid.region(cid)] = chunk

    runs = _max_runs(out, array) if out.size else 0
    with Progress(progress, out.nbytes, layout.key) as bar:
        if array.codecs and runs == 1 and can_decode_into(array.codecs):
            _chunks_into_place(ctx, layout, array, out, bar, _decode_into)
        elif array.codecs or out.size == 0 or runs > _MAX_DIRECT_RUNS:
            read_chunks(ctx, layout, array, range(grid.nchunks), place, bar)
        elif layout.encrypted:
            _chunks_into_place(ctx, layout, array, out, bar, decrypt_chunk_into)
        else:
            _scatter_raw_chunks(ctx, layout, array, out, bar)
    return out


# Reading or decrypting straight into the result costs a few microseconds of Python per
# contiguous run of a chunk in it; past this many runs, one read into a warm scratch buffer
# and one numpy copy into place are cheaper (a 4 MiB copy takes ~0.3 ms).
_MAX_DIRECT_RUNS = 16


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

    A raw chunk's bytes are its region of the array in the array's memory order, so each
    contiguous run of that region in ``out`` can be a destination of the read itself: no
    scratch buffer and no copy. The CRC is then checked over the runs in place.
    """
    grid = array.grid
    flat = memoryview(out.reshape(-1, order="A").view(np.uint8))
    chunks = []
    for cid in range(grid.nchunks):
        start, end = layout.chunk_range(array, cid)
        chunks.append((cid, start, end))
    options = ctx.options
    spans = coalesce(chunks, options.coalesce_gap, options.max_request_bytes)
    entries = layout.index[array.first_chunk : array.first_chunk + grid.nchunks]

    def fetch(span: Span) -> None:
        buffers, owners, position = [], [], span.start
        for cid, start, end in span.chunks:
            if start > position:  # a gap merged into the span: read and drop
                buffers.append(memoryview(bytearray(start - position)))
            runs = region_runs(flat, out, grid.region(cid), array.order)
            owners.append((cid, runs))
            buffers.extend(runs)
            position = end
        cached = layout.cached(span.start, span.end)
        if cached is not None:
            offset = 0
            for buffer in buffers:
                buffer[:] = cached[offset : offset + len(buffer)]
                offset += len(buffer)
        elif ctx.backend.read_scatter(layout.key, span.start, buffers) != span.end - span.start:
            raise CorruptObjectError(layout.key, "object is shorter than its chunk index says")
        for cid, runs in owners:
            crc = 0
            for run in runs:
                crc = checksum(run, crc)
            if crc != entries[cid]["checksum"]:
                raise CorruptObjectError(
                    layout.key, f"checksum mismatch in chunk {cid} of {array.name!r}"
                )
            bar.update(sum(len(run) for run in runs))

    run_all(ctx.executor, fetch, spans)


def read_arrays(
    ctx: IOContext, layout: ObjectLayout, progress: ProgressOption = None
) -> dict[str, np.ndarray]:
    """Every array of an object, by name."""
    return {name: read_array(ctx, layout, a, progress) for name, a in layout.arrays.items()}
