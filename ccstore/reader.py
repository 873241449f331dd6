"""Fetch, verify and decode the chunks of a stored object: coalesced, concurrent, bounded."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from .backends.base import Backend
from .errors import CorruptObjectError
from .format import ArrayLayout, ObjectLayout, decode_chunk
from .options import StoreOptions
from .transfer import Progress, ProgressOption, Span, coalesce, run_all

__all__ = ["IOContext", "read_array", "read_arrays", "read_chunks"]

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
    wanted, cached = [], []
    for cid in chunk_ids:
        start, end = layout.chunk_range(array, cid)
        data = layout.cached(start, end)
        (wanted if data is None else cached).append(
            (cid, start, end) if data is None else (cid, data)
        )
    itemsize = array.dtype.itemsize

    def deliver(cid: int, data: memoryview) -> None:
        chunk = decode_chunk(layout, array, cid, data)
        sink(cid, chunk)
        if progress is not None:
            progress.update(chunk.size * itemsize)

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

    with Progress(progress, out.nbytes, layout.key) as bar:
        read_chunks(ctx, layout, array, range(grid.nchunks), place, bar)
    return out


def read_arrays(
    ctx: IOContext, layout: ObjectLayout, progress: ProgressOption = None
) -> dict[str, np.ndarray]:
    """Every array of an object, by name."""
    return {name: read_array(ctx, layout, a, progress) for name, a in layout.arrays.items()}
