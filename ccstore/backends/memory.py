"""In-process memory backend for tests and scratch work; ``memory://name`` is shared by name."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence

from ..errors import KeyExistsError, KeyNotFoundError
from ..keys import validate_key
from .base import (
    IN_PROCESS_TRANSFER_DEFAULTS,
    Backend,
    Buffer,
    ByteRange,
    ObjectStat,
    Observer,
    resolve_range,
    scatter,
)

__all__ = ["MemoryBackend", "from_url"]

_NAMED: dict[str, MemoryBackend] = {}
_NAMED_LOCK = threading.Lock()


class MemoryBackend(Backend):
    """Objects held as bytes in a dict of this process.

    Backends are registered by name: ``MemoryBackend.named("x")`` (``memory://x``) returns the
    same backend every time within a process. An unpickled backend finds its namesake in the
    new process, or an empty one there: memory is never shared between processes.
    """

    transfer_defaults = IN_PROCESS_TRANSFER_DEFAULTS

    scheme = "memory"
    supports_conditional_write = True

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def named(cls, name: str | None = None) -> MemoryBackend:
        """The process-wide backend called ``name`` (a new, unique one if name is None)."""
        name = name or f"anonymous-{uuid.uuid4().hex}"
        with _NAMED_LOCK:
            backend = _NAMED.get(name)
            if backend is None:
                backend = _NAMED[name] = cls(name)
            return backend

    def __reduce__(self):
        return (MemoryBackend.named, (self.name,))

    @property
    def url(self) -> str:
        return f"memory://{self.name}"

    def _get(self, key: str) -> bytes:
        try:
            return self._objects[validate_key(key)]
        except KeyError:
            raise KeyNotFoundError(key, self.url) from None

    def read(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        data = self._get(key)
        if byte_range is not None:
            start, end = resolve_range(byte_range, len(data))
            data = data[start:end]
        self.stats.record("reads", bytes_read=len(data))
        return data

    def read_scatter(
        self,
        key: str,
        start: int,
        buffers: Sequence[memoryview],
        observe: Observer | None = None,
    ) -> int:
        data = memoryview(self._get(key))[start:]
        done = scatter(data, buffers, observe)
        self.stats.record("reads", bytes_read=done)
        return done

    def write(self, key: str, parts: Iterable[Buffer], *, if_absent: bool = False) -> None:
        validate_key(key)
        data = b"".join(parts)
        with self._lock:
            if if_absent and key in self._objects:
                raise KeyExistsError(key)
            self._objects[key] = data
        self.stats.record("writes", bytes_written=len(data))

    def delete(self, key: str) -> None:
        with self._lock:
            if self._objects.pop(validate_key(key), None) is None:
                raise KeyNotFoundError(key, self.url)
        self.stats.record("deletes")

    def list(self, prefix: str = "") -> Iterator[str]:
        self.stats.record("lists")
        with self._lock:
            keys = [k for k in self._objects if k.startswith(prefix)]
        yield from sorted(keys, key=lambda k: k.encode("utf-8", "surrogatepass"))

    def list_dir(self, prefix: str = "") -> tuple[list[str], list[str]]:
        keys, prefixes = [], set()
        for key in self.list(prefix):
            slash = key.find("/", len(prefix))
            if slash == -1:
                keys.append(key)
            else:
                prefixes.add(key[: slash + 1])
        return keys, sorted(prefixes, key=lambda k: k.encode("utf-8", "surrogatepass"))

    def head(self, key: str) -> ObjectStat:
        self.stats.record("heads")
        return ObjectStat(key, len(self._get(key)))

    def copy(self, src: str, dst: str) -> None:
        data = self._get(src)
        validate_key(dst)
        with self._lock:
            self._objects[dst] = data
        self.stats.record("copies")


def from_url(url: str, options: dict) -> tuple[MemoryBackend, str]:
    """``memory://`` (a new private store) or ``memory://name[/prefix]`` (shared by name)."""
    rest = url[len("memory://") :]
    name, _, prefix = rest.partition("/")
    return MemoryBackend.named(name or None), prefix
