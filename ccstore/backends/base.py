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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from ..stats import Stats

__all__ = [
    "Backend",
    "Buffer",
    "ByteRange",
    "ObjectStat",
    "OffsetByteRequest",
    "RangeByteRequest",
    "SuffixByteRequest",
    "http_range",
    "resolve_range",
]

Buffer = bytes | bytearray | memoryview


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
    # Store options a store over this backend uses unless given others (see StoreOptions).
    transfer_defaults: ClassVar[dict[str, int]] = {
        "concurrency": 8,
        "max_request_bytes": 8 << 20,
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

    def read_scatter(self, key: str, start: int, buffers: Sequence[memoryview]) -> int:
        """Fill ``buffers`` in turn with consecutive bytes from ``start``; return the total.

        Lets readers place one byte range straight into many destinations (the rows of a
        chunk inside a larger array) without an intermediate copy. The default reads into one
        temporary buffer and copies; backends that can scatter (``preadv``, streamed
        responses) override it.
        """
        total = sum(len(b) for b in buffers)
        scratch = memoryview(bytearray(total))
        done = self.read_into(key, start, scratch)
        offset = 0
        for buffer in buffers:
            n = max(min(len(buffer), done - offset), 0)
            buffer[:n] = scratch[offset : offset + n]
            offset += len(buffer)
        return done

    @abstractmethod
    def write(self, key: str, parts: Iterable[Buffer], *, if_absent: bool = False) -> None:
        """Store the concatenation of ``parts`` under ``key``, atomically.

        ``parts`` may be a generator: consume it once, holding a bounded number of parts.
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
