"""Local directory backend: one file per key under a root directory, replaced atomically."""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote

from ..errors import InvalidKeyError, KeyExistsError, KeyNotFoundError
from ..keys import TEMP_SUFFIX, validate_key
from .base import (
    IN_PROCESS_TRANSFER_DEFAULTS,
    Backend,
    Buffer,
    ByteRange,
    ObjectStat,
    Observer,
    resolve_range,
    scatter_stream,
)

__all__ = ["LocalBackend", "from_url"]


class LocalBackend(Backend):
    """Objects as files below ``root``; keys map one to one onto relative paths.

    Writes go to a temporary file beside the target and are renamed over it, so a reader, or
    a process killed mid-write, sees the old value or the new one. ``fsync=True`` also flushes
    data to disk before the rename, which protects against power loss at the cost of speed.
    A local directory cannot hold both an object ``a`` and an object ``a/b``; such a write
    raises InvalidKeyError.
    """

    transfer_defaults = IN_PROCESS_TRANSFER_DEFAULTS

    scheme = "file"
    supports_conditional_write = True

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False) -> None:
        super().__init__()
        self.root = Path(root).expanduser().resolve()
        self.fsync = fsync

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def __getstate__(self) -> dict:
        return {"root": self.root, "fsync": self.fsync}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["root"], fsync=state["fsync"])

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def read(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb", buffering=0) as f:
                if byte_range is None:
                    data = f.read()
                else:
                    start, end = resolve_range(byte_range, os.fstat(f.fileno()).st_size)
                    data = os.pread(f.fileno(), max(end - start, 0), start) if end > start else b""
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyNotFoundError(key, self.url) from None
        self.stats.record("reads", bytes_read=len(data))
        return data

    def read_into(self, key: str, start: int, out: memoryview) -> int:
        return self.read_scatter(key, start, [out])

    def read_scatter(
        self,
        key: str,
        start: int,
        buffers: Sequence[memoryview],
        observe: Observer | None = None,
    ) -> int:
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyNotFoundError(key, self.url) from None
        position = start

        def readinto(view: memoryview) -> int:
            nonlocal position
            filled = 0
            while filled < len(view):
                n = os.preadv(fd, [view[filled:]], position)
                if n == 0:
                    break
                filled, position = filled + n, position + n
            return filled

        try:
            done = scatter_stream(readinto, buffers, observe)
        finally:
            os.close(fd)
        self.stats.record("reads", bytes_read=done)
        return done

    def write(self, key: str, parts: Iterable[Buffer], *, if_absent: bool = False) -> None:
        path = self._path(key)
        self._make_parent(key, path)
        temp = path.with_name(f"{path.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
        written = 0
        try:
            with open(temp, "wb") as f:
                for part in parts:
                    written += f.write(part)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            if if_absent:
                try:
                    os.link(temp, path)  # fails if the target exists, atomically
                except FileExistsError:
                    raise KeyExistsError(key) from None
                os.unlink(temp)
            else:
                os.replace(temp, path)
        except IsADirectoryError:
            raise InvalidKeyError(
                key, "a local store holds keys below it, so it cannot also be an object"
            ) from None
        finally:
            if temp.exists():
                temp.unlink()
        self.stats.record("writes", bytes_written=written)

    def _make_parent(self, key: str, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InvalidKeyError(
                key, "a parent of this key is an object, and a local store cannot hold both"
            ) from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
            if isinstance(e, PermissionError) and not path.is_dir():
                raise
            raise KeyNotFoundError(key, self.url) from None
        self.stats.record("deletes")
        self._prune_empty_dirs(path.parent)

    def _prune_empty_dirs(self, directory: Path) -> None:
        """Remove directories left empty, as S3 has no directories of its own."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError as e:
                if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                    return
                raise
            directory = directory.parent

    def list(self, prefix: str = "") -> Iterator[str]:
        self.stats.record("lists")
        base, _, _ = prefix.rpartition("/")
        start = self.root.joinpath(*base.split("/")) if base else self.root
        found = []
        for dirpath, dirnames, filenames in os.walk(start):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            dirnames[:] = [d for d in dirnames if _may_hold(rel + d + "/", prefix)]
            for name in filenames:
                key = rel + name
                if key.startswith(prefix) and not name.endswith(TEMP_SUFFIX):
                    found.append(key)
        found.sort(key=_utf8)
        yield from found

    def has_prefix(self, prefix: str) -> bool:
        if prefix.endswith("/"):  # a directory: empty ones are pruned on delete
            directory = self.root.joinpath(*prefix.rstrip("/").split("/"))
            self.stats.record("lists")
            return directory.is_dir() and any(True for _ in directory.iterdir())
        return super().has_prefix(prefix)

    def list_dir(self, prefix: str = "") -> tuple[list[str], list[str]]:
        self.stats.record("lists")
        base, _, stem = prefix.rpartition("/")
        directory = self.root.joinpath(*base.split("/")) if base else self.root
        head = base + "/" if base else ""
        keys, prefixes = [], []
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return [], []
        for entry in entries:
            name = entry.name
            if not name.startswith(stem) or name.endswith(TEMP_SUFFIX):
                continue
            if entry.is_dir():
                prefixes.append(head + name + "/")
            else:
                keys.append(head + name)
        return sorted(keys, key=_utf8), sorted(prefixes, key=_utf8)

    def head(self, key: str) -> ObjectStat:
        path = self._path(key)
        self.stats.record("heads")
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise KeyNotFoundError(key, self.url) from None
        if not path.is_file():
            raise KeyNotFoundError(key, self.url)
        return ObjectStat(key, st.st_size)

    def copy(self, src: str, dst: str) -> None:
        source, target = self._path(src), self._path(dst)
        if not source.is_file():
            raise KeyNotFoundError(src, self.url)
        self._make_parent(dst, target)
        temp = target.with_name(f"{target.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
        try:
            shutil.copyfile(source, temp)
            os.replace(temp, target)
        finally:
            if temp.exists():
                temp.unlink()
        self.stats.record("copies")

    def move(self, src: str, dst: str) -> None:
        source, target = self._path(src), self._path(dst)
        if not source.is_file():
            raise KeyNotFoundError(src, self.url)
        self._make_parent(dst, target)
        os.replace(source, target)
        self.stats.record("copies")
        self._prune_empty_dirs(source.parent)


def _utf8(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def _may_hold(directory: str, prefix: str) -> bool:
    """Whether keys below ``directory`` (ending in '/') can start with ``prefix``."""
    return directory.startswith(prefix) or prefix.startswith(directory)


def from_url(url: str, options: dict) -> tuple[LocalBackend, str]:
    """Backend for ``file:///abs/path`` or a plain path; consumes the ``fsync`` option."""
    path = unquote(url[len("file://") :]) if url.startswith("file://") else url
    return LocalBackend(path, fsync=options.pop("fsync", False)), ""
