"""Fetch, verify and decode the chunks of a stored object: coalesced, concurrent, bounded."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial as partial_job

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
from .pages import PAGE_ENTRY, ChunkChecksums, chunk_crc, page_runs, touched_pages
from .progress import Progress, ProgressOption
from .transfer import Span, ThreadScratch, coalesce, run_all, run_groups

__all__ = [
    "IOContext",
    "pages_to_read",
    "read_array",
    "read_arrays",
    "read_chunks",
    "verify_object",
]

ChunkSink = Callable[[int, np.ndarray], None]


@dataclass(frozen=True)
class IOContext:
    """What reading needs from a store: the backend, executors and the transfer options.

    ``executor`` runs ``concurrency`` requests at a time; ``page_executor``, for page reads,
    ``page_concurrency`` (the same executor where that is no more)."""

    backend: Backend
    executor: Executor | None
    page_executor: Executor | None
    options: StoreOptions


def read_chunks(
    ctx: IOContext,
    layout: ObjectLayout,
    array: ArrayLayout,
    chunk_ids: Iterable[int],
    sink: ChunkSink,
    progress: Progress | None = None,
    pages: Mapping[int, list[tuple[int, int]]] | None = None,
) -> None:
    """Call ``sink(chunk_id, decoded_chunk)`` for every listed chunk, fetching only their bytes.

    Neighbouring chunks are merged into one request when the gap between them is at most
    ``coalesce_gap``; requests run ``concurrency`` at a time; each chunk is decoded in the
    thread that fetched it. Chunks already in the layout's cached tail cost no request.
    ``pages`` (see ``pages_to_read``) maps chunks to read only in part to the page runs to
    read; their sink gets a chunk whose bytes outside those pages are undefined. Those reads
    hold no scratch buffer (pages land in the chunk's own buffer), so they run
    ``page_concurrency`` at a time, beside the others.
    """
    itemsize = array.dtype.itemsize
    partial = pages or {}

    def deliver(cid: int, data: memoryview) -> None:
        chunk = decode_chunk(layout, array, cid, data)
        sink(cid, chunk)
        if progress is not None:
            progress.update(chunk.size * itemsize)

    whole = [cid for cid in chunk_ids if cid not in partial]
    jobs = _stored_jobs(ctx, layout, array, whole, deliver)
    page_jobs = []
    if partial:
        _load_page_crcs(ctx, layout, array, partial)
        for cid, runs in partial.items():
            page_jobs.append(
                partial_job(_read_pages, ctx, layout, array, cid, runs, sink, progress)
            )
    run_groups([(ctx.executor, _call, jobs), (ctx.page_executor, _call, page_jobs)])


def _call(job: Callable[[], None]) -> None:
    job()


# A chunk is read in part when the pages it needs, each further request counted as
# ``coalesce_gap`` bytes, come to less than this share of it: whole chunks take one request
# (merged with their neighbours) and one checksum.
_PARTIAL_SHARE = 0.5


def pages_to_read(
    ctx: IOContext,
    layout: ObjectLayout,
    array: ArrayLayout,
    selections: Mapping[int, Iterable[tuple[tuple, tuple[int, ...] | None]]],
) -> dict[int, list[tuple[int, int]]]:
    """The chunks worth reading only in part, with the page runs [first, stop) to read.

    ``selections`` maps a chunk to what is taken from it, as ``(chunk_sel, transpose)``
    pairs (see indexing.ChunkTask). Empty unless the array has page checksums.
    """
    if not layout.has_pages(array):
        return {}
    size, gap = array.page_bytes, ctx.options.coalesce_gap
    plan = {}
    for cid, picks in selections.items():
        start, end = layout.chunk_range(array, cid)
        nbytes = end - start
        if nbytes <= size:
            continue
        touched = touched_pages(
            array.grid.chunk_shape(cid), array.order, array.dtype.itemsize, size, picks
        )
        runs = page_runs(touched, gap // size)
        cost = sum(min(stop * size, nbytes) - first * size for first, stop in runs)
        if cost + (len(runs) - 1) * gap < _PARTIAL_SHARE * nbytes:
            plan[cid] = runs
    return plan


def _load_page_crcs(
    ctx: IOContext, layout: ObjectLayout, array: ArrayLayout, chunk_ids: Iterable[int]
) -> None:
    """Make sure ``layout.page_crcs`` holds the page checksums of the listed chunks."""
    missing = layout.page_table_ranges(
        array, [cid for cid in chunk_ids if (array.name, cid) not in layout.page_crcs]
    )
    options = ctx.options
    spans = coalesce(missing, options.coalesce_gap, options.max_request_bytes)

    def fetch(span: Span) -> None:
        data = layout.cached(span.start, span.end)
        if data is None:
            data = ctx.backend.read(layout.key, RangeByteRequest(span.start, span.end))
            if len(data) != span.end - span.start:
                raise CorruptObjectError(layout.key, "object is shorter than its page table says")
        for cid, start, end in span.chunks:
            entries = np.frombuffer(bytes(data[start - span.start : end - span.start]), PAGE_ENTRY)
            chunk_start, chunk_end = layout.chunk_range(array, cid)
            expected = layout.index[array.first_chunk + cid]["checksum"]
            if chunk_crc(entries, chunk_end - chunk_start, array.page_bytes) != expected:
                raise CorruptObjectError(
                    layout.key,
                    f"page table of chunk {cid} of {array.name!r} does not match the chunk's "
                    "checksum (damaged, or the object was rewritten since it was opened)",
                )
            layout.page_crcs[(array.name, cid)] = entries

    run_all(ctx.executor, fetch, spans)


def _chunk_buffer(nbytes: int) -> np.ndarray:
    """Room for a chunk read in part: uninitialised, so pages never read are never touched."""
    return np.empty(nbytes, np.uint8)


def _read_pages(
    ctx: IOContext,
    layout: ObjectLayout,
    array: ArrayLayout,
    cid: int,
    runs: list[tuple[int, int]],
    sink: ChunkSink,
    progress: Progress | None,
) -> None:
    """Read the listed page runs of a chunk, check every page, and hand the chunk to
    ``sink`` (its other bytes undefined: never written, never read)."""
    start, end = layout.chunk_range(array, cid)
    nbytes, size = end - start, array.page_bytes
    crcs = layout.page_crcs[(array.name, cid)]
    buffer = _chunk_buffer(nbytes)
    view = memoryview(buffer)
    for first, stop in runs:
        lo, hi = first * size, min(stop * size, nbytes)
        cached = layout.cached(start + lo, start + hi)
        if cached is not None:
            view[lo:hi] = cached
        elif ctx.backend.read_into(layout.key, start + lo, view[lo:hi]) != hi - lo:
            raise CorruptObjectError(layout.key, "object is shorter than its chunk index says")
        for page in range(first, stop):
            if checksum(view[page * size : min((page + 1) * size, nbytes)]) != crcs[page]:
                raise CorruptObjectError(
                    layout.key, f"checksum mismatch in page {page} of chunk {cid} of {array.name!r}"
                )
        if progress is not None:
            progress.update(hi - lo)
    shape = array.grid.chunk_shape(cid)
    sink(cid, buffer.view(array.dtype).reshape(shape, order=array.order))


def verify_object(ctx: IOContext, layout: ObjectLayout) -> None:
    """Check the magic bytes and every chunk's checksum (and authentication tag, if the
    layout is encrypted and unlocked, or page checksums, if it has them) with bounded memory:
    chunks are fetched like any read, verified and dropped, never decoded."""
    magic = layout.cached(0, len(MAGIC))
    if magic is None:
        magic = ctx.backend.read(layout.key, RangeByteRequest(0, len(MAGIC)))
    if bytes(magic) != MAGIC:
        raise CorruptObjectError(layout.key, "bad magic bytes at the start of the object")
    for array in layout.arrays.values():
        chunk_ids = range(array.grid.nchunks)
        if layout.has_pages(array):
            _load_page_crcs(ctx, layout, array, chunk_ids)

        def check(cid: int, data: memoryview, array: ArrayLayout = array) -> None:
            verify_chunk(layout, array, cid, data, authenticate=layout.cipher is not None)
            if layout.has_pages(array):
                sums = ChunkChecksums(array.page_bytes)
                sums.update(data)
                if not np.array_equal(sums.page_crcs(), layout.page_crcs[(array.name, cid)]):
                    raise CorruptObjectError(
                        layout.key, f"page checksums of chunk {cid} of {array.name!r} mismatch"
                    )

        _fetch_stored(ctx, layout, array, chunk_ids, check)


def _fetch_stored(
    ctx: IOContext,
    layout: ObjectLayout,
    array: ArrayLayout,
    chunk_ids: Iterable[int],
    deliver: Callable[[int, memoryview], None],
) -> None:
    """Call ``deliver(chunk_id, stored_bytes)`` for the listed chunks: coalesced, concurrent,
    each stored chunk valid only during its call (it lives in a reused per-thread buffer)."""
    run_all(ctx.executor, _call, _stored_jobs(ctx, layout, array, chunk_ids, deliver))


def _stored_jobs(
    ctx: IOContext,
    layout: ObjectLayout,
    array: ArrayLayout,
    chunk_ids: Iterable[int],
    deliver: Callable[[int, memoryview], None],
) -> list[Callable[[], None]]:
    """The jobs of ``_fetch_stored``: one per coalesced request (chunks already in the
    cached tail are delivered at once)."""
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

    def fetch(span: Span) -> None:
        view = _SPANS.get(span.end - span.start)
        if ctx.backend.read_into(layout.key, span.start, view) != len(view):
            raise CorruptObjectError(layout.key, "object is shorter than its chunk index says")
        for cid, start, end in span.chunks:
            deliver(cid, view[start - span.start : end - span.start])

    spans = coalesce(wanted, options.coalesce_gap, options.max_request_bytes)
    return [partial_job(fetch, span) for span in spans]


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
    spans = coalesce(chunks, options.coalesce_gap, _scatter_request_bytes(options, chunks))
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


# Reads straight into the result need no scratch buffer, so the limit that bounds scratch
# memory (max_request_bytes) need not cut them small: fewer, larger requests pay fewer round
# trips and cost the server less per byte (Ceph, 512 MiB, 20 ms added: 8 MiB requests
# 261 MiB/s, 64 MiB ones 287 MiB/s, obstore's single GET 290).
_SCATTER_REQUEST_MAX = 64 << 20


def _scatter_request_bytes(options: StoreOptions, chunks: list[tuple[int, int, int]]) -> int:
    """The request size for reading ``chunks`` (id, start, end) straight into the result:
    their bytes in ``concurrency`` requests, at most 64 MiB and at least max_request_bytes."""
    total = sum(end - start for _, start, end in chunks)
    spread = -(-total // options.concurrency)
    return max(options.max_request_bytes, min(_SCATTER_REQUEST_MAX, spread))


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
