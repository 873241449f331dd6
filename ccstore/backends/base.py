"""The backend protocol: the only thing a storage service implements to work with ccstore.

A backend stores opaque objects (bytes) under validated keys. It knows nothing about arrays,
codecs or encryption. Everything above it (store, format, lazy arrays, zarr adapter) talks to a
storage service only through these methods.

Required: ``read``, ``write``, ``delete``, ``list``, ``list_dir``, ``head``.
Optional, with working defaults: ``read_into`` (zero-copy reads), ``delete_many``, ``copy``,
``move``, ``copy_with_tail``. Backends that can write conditionally set
``supports_conditional_write``; ``transfer_defaults`` gives the concurrency and request size
that suit the service (stores use them unless told otherwise).

Backends must be picklable: they carry configuration, not open connections, and reconnect
lazily in the process that unpickles them.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..stats import Stats
from ..transfer import ThreadScratch

__all__ = [
    "Backend",
    "Buffer",
    "ByteRange",
    "ObjectStat",
    "Observer",
    "OffsetByteRequest",
    "RangeByteRequest",
    "SuffixByteRequest",
    "fill_rows",
    "http_range",
    "resolve_range",
    "scatter",
    "scatter_stream",
]

Buffer = bytes | bytearray | memoryview
# Sees the bytes a read places, in pieces: (offset from the read's start, the piece).
Observer = Callable[[int, memoryview], None]


@dataclass(frozen=True)
class RangeByteRequest:
    """Bytes ``start`` (inclusive) to ``end`` (exclusive)."""

    start: int
    end: int


@dataclass(frozen=True)
class OffsetByteRequest:
    """Bytes from ``offset`` to the end of the object."""

    offset: int


@dataclass(frozen=True)
class SuffixByteRequest:
    """The last ``suffix`` bytes of the object (the whole object if it is shorter)."""

    suffix: int


ByteRange = RangeByteRequest | OffsetByteRequest | SuffixByteRequest


@dataclass(frozen=True)
class ObjectStat:
    """What a backend knows about a stored object without reading it."""

    key: str
    size: int
    metadata: dict[str, str] = field(default_factory=dict)


def resolve_range(byte_range: ByteRange, size: int) -> tuple[int, int]:
    """Absolute [start, end) of a byte range within an object of ``size`` bytes, clipped."""
    if isinstance(byte_range, RangeByteRequest):
        return min(byte_range.start, size), min(max(byte_range.end, byte_range.start), size)
    if isinstance(byte_range, OffsetByteRequest):
        return min(byte_range.offset, size), size
    if isinstance(byte_range, SuffixByteRequest):
        return max(size - byte_range.suffix, 0), size
    raise TypeError(f"not a byte range: {byte_range!r}")


def scatter(data: Buffer, buffers: Sequence[memoryview], observe: Observer | None = None) -> int:
    """Copy ``data`` into ``buffers`` in turn (see ``Backend.read_scatter``); return how many
    bytes were placed."""
    view = memoryview(data).cast("B")
    offset = 0
    for buffer in buffers:
        if offset == len(view):
            break
        n = min(buffer.nbytes, len(view) - offset)
        if buffer.ndim == 1:
            buffer[:n] = view[offset : offset + n]
        else:
            fill_rows(np.asarray(buffer), view[offset : offset + n])
        offset += n
    if observe is not None and offset:
        observe(0, view[:offset])
    return offset


def fill_rows(rows: np.ndarray, data: memoryview) -> None:
    """Copy ``data`` into the first ``len(data)`` bytes of ``rows`` (2-d uint8), row by row."""
    width = rows.shape[1]
    whole, rest = divmod(len(data), width)
    rows[:whole] = np.frombuffer(data, np.uint8, whole * width).reshape(whole, width)
    if rest:
        rows[whole, :rest] = np.frombuffer(data, np.uint8, rest, whole * width)


# Destinations smaller than this are filled from a per-thread bounce buffer: one read serves
# many of them (the rows of a square chunk are a few KiB each), where a read per destination
# costs a few microseconds of Python (or, with preadv, of the kernel) each.
_SMALL_DESTINATION = 64 << 10
_BOUNCE_BYTES = 256 << 10
_BOUNCE = ThreadScratch()


def scatter_stream(
    readinto: Callable[[memoryview], int],
    buffers: Sequence[memoryview],
    observe: Observer | None = None,
) -> int:
    """Fill ``buffers`` in turn (see ``Backend.read_scatter``) from a sequential source whose
    ``readinto(view)`` fills ``view`` unless the data ends first; return the bytes placed.
    Large destinations are read into directly, small ones through a bounce buffer."""
    done = 0

    def read(view: memoryview) -> int:
        nonlocal done
        n = readinto(view)
        if observe is not None and n:
            observe(done, view[:n])
        done += n
        return n

    i = 0
    while i < len(buffers):
        buffer = buffers[i]
        if buffer.ndim == 2:
            n, i = _read_rows(read, np.asarray(buffer)), i + 1
        elif buffer.nbytes >= _SMALL_DESTINATION:
            n, i = read(buffer), i + 1
        else:  # a run of small buffers shares one read
            group, wanted = i, 0
            while (
                group < len(buffers)
                and buffers[group].ndim == 1
                and wanted + buffers[group].nbytes <= _BOUNCE_BYTES
            ):
                wanted += buffers[group].nbytes
                group += 1
            bounce = _BOUNCE.get(wanted)
            n = read(bounce)
            scatter(bounce[:n], buffers[i:group])
            buffer, i = bounce, group
        if n < buffer.nbytes:
            break
    return done


def _read_rows(read: Callable[[memoryview], int], rows: np.ndarray) -> int:
    """Fill the rows of a 2-d uint8 block: wide rows directly, narrow ones many per read."""
    width, done = rows.shape[1], 0
    step = 1 if width >= _SMALL_DESTINATION else _BOUNCE_BYTES // width
    for first in range(0, len(rows), step):
        block = rows[first : first + step]
        if step == 1:
            n = read(memoryview(block).cast("B"))
        else:
            bounce = _BOUNCE.get(block.nbytes)
            n = read(bounce)
            fill_rows(block, bounce[:n])
        done += n
        if n < block.nbytes:
            break
    return done


def http_range(byte_range: ByteRange | None) -> str | None:
    """The HTTP ``Range`` header value for a byte range: None for the whole object, "" for a
    range that is empty (no request needed)."""
    if byte_range is None:
        return None
    if isinstance(byte_range, RangeByteRequest):
        if byte_range.end <= byte_range.start:
            return ""
        return f"bytes={byte_range.start}-{byte_range.end - 1}"
    if isinstance(byte_range, OffsetByteRequest):
        return f"bytes={byte_range.offset}-"
    if isinstance(byte_range, SuffixByteRequest):
        return f"bytes=-{byte_range.suffix}" if byte_range.suffix > 0 else ""
    raise TypeError(f"not a byte range: {byte_range!r}")


# Local and memory backends are bound by cores and memory bandwidth, not latency: more
# threads than cores only contend, and requests that stay in cache copy faster (measured on
# 2 cores, whole 1 GiB reads: 2 threads x 4 MiB beat 8 x 8 MiB by 1.4x warm, 1.2x cold).
IN_PROCESS_TRANSFER_DEFAULTS = {
    "concurrency": min(8, os.cpu_count() or 1),
    "max_request_bytes": 4 << 20,
    "coalesce_gap": 64 << 10,
}


class Backend(ABC):
    """A storage service holding objects under '/'-separated keys (see module docstring).

    Conventions every implementation follows:

    - Missing objects raise ``ccstore.errors.KeyNotFoundError``.
    - Ranges past the end of an object are clipped (a read may return fewer bytes); a range
      that starts past the end returns ``b""``.
    - ``write`` is atomic: readers see the old value or the new one, never a mix, and a failed
      or interrupted write leaves the old value and no partial object.
    - ``list`` yields full keys in ascending (UTF-8 byte) order.
    - Every request is counted in ``self.stats``.
    """

    scheme: ClassVar[str] = ""
    supports_conditional_write: ClassVar[bool] = False
    # Whether ``write`` takes 2-d blocks with contiguous rows among its parts (as
    # ``read_scatter`` does), written row by row: uncompressed chunks then need no copy.
    writes_blocks: ClassVar[bool] = False
    # Store options a store over this backend uses unless given others (see StoreOptions).
    # Over a network a request costs a round trip, worth about a megabyte of transfer at
    # cloud latencies and bandwidths: reading a gap up to that size beats a request more
    # (object_store, behind obstore, merges ranges 1 MiB apart too).
    transfer_defaults: ClassVar[dict[str, int]] = {
        "concurrency": 8,
        "max_request_bytes": 8 << 20,
        "coalesce_gap": 1 << 20,
    }

    def __init__(self) -> None:
        self.stats = Stats()

    @abstractmethod
    def read(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """Return the object's bytes, or the requested range of them."""

    def read_into(self, key: str, start: int, out: memoryview) -> int:
        """Fill ``out`` with the object's bytes from ``start``; return how many were read.

        Fewer than ``len(out)`` means the object ended first. Override to avoid the copy.
        """
        data = self.read(key, RangeByteRequest(start, start + len(out)))
        out[: len(data)] = data
        return len(data)

    def read_scatter(
        self,
        key: str,
        start: int,
        buffers: Sequence[memoryview],
        observe: Observer | None = None,
    ) -> int:
        """Fill ``buffers`` in turn with consecutive bytes from ``start``; return the total.

        Lets readers place one byte range straight into many destinations (the rows of a
        chunk inside a larger array) without an intermediate copy. A buffer is 1-d, or 2-d
        with contiguous rows (a strided block of a larger array, filled row by row).
        ``observe(offset, data)``, if given, sees every placed byte once, in order, in
        pieces, each with its offset from ``start`` (checksums taken there read bytes still
        in cache); a read that starts over calls it again from offset 0. The default copies
        out of what ``read`` returns; backends that can scatter (``preadv``, streamed
        responses) override it.
        """
        total = sum(b.nbytes for b in buffers)
        if total == 0:
            return 0
        data = self.read(key, RangeByteRequest(start, start + total))
        return scatter(data, buffers, observe)

    @abstractmethod
    def write(self, key: str, parts: Iterable[Buffer], *, if_absent: bool = False) -> None:
        """Store the concatenation of ``parts`` under ``key``, atomically.

        ``parts`` may be a generator: consume it once, holding a bounded number of parts.
        Every part stays unchanged until ``write`` returns, so a backend may keep views of
        parts instead of copies.
        With ``if_absent=True`` the write fails with KeyExistsError if the key exists (only
        backends with ``supports_conditional_write`` accept it; others raise
        NotImplementedError).
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; KeyNotFoundError if there is none."""

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove every listed object that exists (missing ones are ignored)."""
        from ..errors import KeyNotFoundError

        for key in keys:
            try:
                self.delete(key)
            except KeyNotFoundError:
                pass

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield every key that starts with ``prefix``, recursively, in ascending order."""

    @abstractmethod
    def list_dir(self, prefix: str = "") -> tuple[list[str], list[str]]:
        """One level below ``prefix`` ('/' as delimiter): (keys, sub-prefixes ending in '/').

        Services that keep emptied folders (SeaweedFS) may report sub-prefixes with no objects
        left below them; ``has_prefix`` tells for sure.
        """

    def has_prefix(self, prefix: str) -> bool:
        """Whether at least one object's key starts with ``prefix``."""
        return next(iter(self.list(prefix)), None) is not None

    @abstractmethod
    def head(self, key: str) -> ObjectStat:
        """Size and service metadata of the object; KeyNotFoundError if there is none."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        from ..errors import KeyNotFoundError

        try:
            self.head(key)
        except KeyNotFoundError:
            return False
        return True

    def copy(self, src: str, dst: str) -> None:
        """Copy an object (server-side where the service can). Default: read and write back."""
        self.write(dst, self._iter_ranges(src))

    def move(self, src: str, dst: str) -> None:
        """Move an object. Default: copy, then delete the source."""
        self.copy(src, dst)
        self.delete(src)

    def copy_with_tail(self, src: str, dst: str, keep: int, tail: Buffer) -> None:
        """Write ``dst`` (atomically, like ``write``) as the first ``keep`` bytes of ``src``
        followed by ``tail``; ``src`` may be ``dst``. Used to re-key or re-bind encrypted
        objects without touching their chunks. Default: stream the bytes through."""

        from ..errors import CorruptObjectError

        if self.head(src).size < keep:
            raise CorruptObjectError(src, f"shorter than the {keep} bytes to keep")

        def parts() -> Iterator[Buffer]:
            yield from self._iter_ranges(src, end=keep)
            yield tail

        self.write(dst, parts())

    def _iter_ranges(
        self, key: str, step: int = 8 << 20, end: int | None = None
    ) -> Iterator[bytes]:
        from ..errors import CorruptObjectError

        size = self.head(key).size if end is None else end
        for start in range(0, size, step):
            data = self.read(key, RangeByteRequest(start, min(start + step, size)))
            if len(data) != min(step, size - start):
                raise CorruptObjectError(key, "the object changed or shrank while being copied")
            yield data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @property
    @abstractmethod
    def url(self) -> str:
        """A URL that ``ccstore.open`` turns back into an equivalent backend (no secrets)."""
