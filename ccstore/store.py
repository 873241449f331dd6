"""Store: a MutableMapping from '/'-separated keys to values kept in any backend."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from . import cottoncandy, kinds
from .backends import backend_from_url
from .backends.base import Backend
from .chunking import normalize_chunks
from .codecs import Compression, compression_name, resolve
from .encryption import EncryptionKey, KeyLike, Keyring, as_keyring, rewrap_header
from .errors import (
    CCStoreError,
    CorruptObjectError,
    InvalidKeyError,
    KeyNotFoundError,
    PickleNotAllowedError,
    ReadOnlyError,
    UnencryptedObjectError,
    UnsupportedValueError,
)
from .forks import renew_after_fork
from .format import ArrayPart, ObjectLayout, read_layout, unlock, write_object
from .keys import glob_prefix, glob_regex, validate_key, validate_prefix
from .lazy import LazyArray
from .options import StoreOptions
from .progress import BatchProgress, Progress, ProgressOption
from .reader import IOContext, read_arrays, verify_object
from .stats import Stats
from .transfer import ordered_map

__all__ = ["ObjectInfo", "Store", "open", "rotate_key"]

_UNSET: Any = object()
_DIRECTORY: Any = object()  # _open's marker for a prefix with objects below it
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ObjectInfo:
    """What is stored under a key, read from the object's header (no data is fetched)."""

    key: str
    kind: str
    size: int
    shape: tuple[int, ...] | None = None
    dtype: np.dtype | None = None
    chunks: tuple[int, ...] | None = None
    order: str | None = None
    nchunks: int = 0
    compression: str | None = None
    encrypted: bool = False
    key_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


# Marks the threads that run whole-object operations of a batch (see _Runtime.for_each).
_object_thread = threading.local()


def _mark_object_thread() -> None:
    _object_thread.active = True


class _Runtime:
    """Per-process resources shared by a store and its views: the worker threads.

    Pools: ``executor`` for the pieces of one object (chunk encodings and reads), one for
    whole objects of a batch (``update``, ``load_many``), and ``page_executor`` for page reads
    when more of them go at once than other requests. Each object of a batch hands its
    pieces to the others, which run nothing but their pieces, so no pool ever waits on its
    own queue.
    """

    def __init__(self, workers: int, page_workers: int) -> None:
        self._workers = workers
        self._page_workers = page_workers
        self._executor: ThreadPoolExecutor | None = None
        self._pages: ThreadPoolExecutor | None = None
        self._objects: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        renew_after_fork(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._executor = self._pages = self._objects = None

    @property
    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="ccstore")
            return self._executor

    @property
    def page_executor(self) -> ThreadPoolExecutor:
        if self._page_workers <= self._workers:
            return self.executor
        with self._lock:
            if self._pages is None:
                self._pages = ThreadPoolExecutor(
                    self._page_workers, thread_name_prefix="ccstore-pages"
                )
            return self._pages

    def for_each(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``map(fn, items)`` with up to ``workers`` items at a time, results in order. Called
        from inside a batch (a dict value stored as a tree), it runs in the calling thread."""
        if getattr(_object_thread, "active", False):
            return map(fn, items)
        with self._lock:
            if self._objects is None:
                self._objects = ThreadPoolExecutor(
                    self._workers,
                    thread_name_prefix="ccstore-object",
                    initializer=_mark_object_thread,
                )
            pool = self._objects
        return ordered_map(pool, fn, items, self._workers)

    def run_each(self, fn: Callable[[T], Any], items: Iterable[T]) -> None:
        """``fn`` on every item as ``for_each`` runs it; returns once all are done, or raises
        the first failure in item order once the items in flight are done."""
        for _ in self.for_each(fn, items):
            pass

    def close(self) -> None:
        with self._lock:
            pools = (self._executor, self._pages, self._objects)
            self._executor = self._pages = self._objects = None
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=True)


def _encode_window(concurrency: int) -> int:
    """Chunks encoded ahead of the upload. Encoding is CPU work, so more chunks in flight than
    cores only holds memory: with 8 on 2 cores a 1 GiB upload peaked 65 MiB higher than with
    3 (chunks freed by other threads stay in their malloc arenas), and was no faster."""
    return min(concurrency, os.cpu_count() or 1) + 1


class Store(MutableMapping[str, Any]):
    """A dict-like view of the objects below a prefix of a backend.

    ``store[key] = value`` writes (arrays, sparse matrices, bytes, str, JSON values, dicts of
    arrays; anything else as a pickle); ``store[key]`` reads (arrays as LazyArray, a key with
    objects below it as a sub-store); iteration lists every key below the prefix, recursively.
    Create stores with ``ccstore.open(url, **options)``.
    """

    def __init__(
        self,
        backend: Backend,
        prefix: str = "",
        options: StoreOptions | None = None,
        _runtime: _Runtime | None = None,
    ) -> None:
        self.backend = backend
        self.prefix = validate_prefix(prefix)
        self.options = (options or StoreOptions()).for_backend(backend)
        self._runtime = _runtime or _Runtime(
            self.options.concurrency, self.options.page_concurrency
        )

    # -- identity, pickling, resources -------------------------------------------------------

    @property
    def url(self) -> str:
        """A URL that ``ccstore.open`` turns back into this store (without its options)."""
        base = self.backend.url.rstrip("/")
        return f"{base}/{self.prefix.rstrip('/')}" if self.prefix else base

    @property
    def read_only(self) -> bool:
        return self.options.read_only

    @property
    def stats(self) -> Stats:
        """Requests and bytes this store's backend has sent and received."""
        return self.backend.stats

    def __getstate__(self) -> dict[str, Any]:
        return {"backend": self.backend, "prefix": self.prefix, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["backend"], state["prefix"], state["options"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Store) and (self.url, self.options) == (other.url, other.options)

    def __hash__(self) -> int:
        return hash(self.url)

    def __repr__(self) -> str:
        flag = ", read_only" if self.read_only else ""
        return f"<ccstore.Store {self.url!r}{flag}>"

    def close(self) -> None:
        """Stop this store's worker threads (they restart if the store is used again)."""
        self._runtime.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _io(self) -> IOContext:
        runtime = self._runtime
        return IOContext(self.backend, runtime.executor, runtime.page_executor, self.options)

    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _check_writable(self, key: str) -> None:
        if self.options.read_only:
            raise ReadOnlyError(key)

    # -- reading -----------------------------------------------------------------------------

    def _layout(self, full_key: str) -> ObjectLayout:
        """An object's layout, decryptable if it is encrypted (else EncryptedObjectError)."""
        return unlock(self._raw_layout(full_key), self.options.encryption)

    def _check_encrypted(self, full_key: str, encrypted: bool) -> None:
        if self.options.require_encryption and not encrypted:
            raise UnencryptedObjectError(full_key)

    def _raw_layout(self, full_key: str) -> ObjectLayout:
        return read_layout(self.backend, full_key, self.options.tail_bytes)

    def _is_dir(self, full_key: str) -> bool:
        return self.backend.has_prefix(full_key + "/")

    def _open(self, key: str) -> tuple[ObjectLayout | None, Any]:
        """(layout, None) for a ccstore object; (None, value) for data cottoncandy wrote;
        (None, _DIRECTORY) for a prefix with objects below it; else KeyNotFoundError."""
        full = self._key(key)
        try:
            layout = self._layout(full)
        except KeyNotFoundError:
            keys, prefixes = self.backend.list_dir(full + "/")
            if f"{full}/metadata.json" in keys:
                legacy = cottoncandy.read_prefix(self.backend, full)
                if legacy is not None:
                    self._check_encrypted(full, False)
                    return None, legacy
            if keys or (prefixes and self._is_dir(full)):
                return None, _DIRECTORY
            raise KeyNotFoundError(key, self.url) from None
        except CorruptObjectError as error:
            legacy = cottoncandy.read_array_object(self.backend, full)
            if legacy is None:
                raise error from None
            self._check_encrypted(full, False)
            return None, legacy
        self._check_encrypted(full, layout.encrypted)
        return layout, None

    def __getitem__(self, key: str) -> Any:
        layout, value = self._open(key)
        if layout is None:
            return self.sub(key) if value is _DIRECTORY else value
        if layout.kind == "array" and not layout.header["attrs"].get("scalar"):
            return LazyArray(self, key, layout)
        return self._materialize(key, layout, self.options.allow_pickle, None)

    def load(
        self, key: str, *, allow_pickle: bool | None = None, progress: ProgressOption = None
    ) -> Any:
        """The value under ``key``, fully read (arrays as numpy arrays, prefixes as dicts)."""
        allow = self.options.allow_pickle if allow_pickle is None else allow_pickle
        layout, value = self._open(key)
        if layout is None:
            return self._load_tree(key, allow, progress) if value is _DIRECTORY else value
        return self._materialize(key, layout, allow, progress)

    def load_many(
        self,
        keys: Iterable[str],
        *,
        allow_pickle: bool | None = None,
        progress: ProgressOption = None,
    ) -> dict[str, Any]:
        """``{key: store.load(key)}`` for every key, in the order given, read up to
        ``concurrency`` objects at a time. Many small objects load that many times faster
        than one by one, as each costs a round trip. The first error in key order (e.g.
        KeyNotFoundError) is raised once the reads in flight have settled. ``progress``
        reports the batch as one, in objects (see StoreOptions.progress)."""
        if isinstance(keys, str):
            raise TypeError(f"load_many takes keys, not one key ({keys!r}): use load for one")
        return self._load_many(list(dict.fromkeys(keys)), allow_pickle, progress, "load_many")

    def _load_many(
        self,
        keys: list[str],
        allow_pickle: bool | None,
        progress: ProgressOption,
        description: str,
    ) -> dict[str, Any]:
        with BatchProgress(self.options.progress_for(progress), len(keys), description) as batch:
            each = batch.object_progress()

            def load(key: str) -> Any:
                value = self.load(key, allow_pickle=allow_pickle, progress=each)
                batch.object_done()
                return value

            return dict(zip(keys, self._runtime.for_each(load, keys)))

    def _materialize(
        self, key: str, layout: ObjectLayout, allow_pickle: bool, progress: ProgressOption
    ) -> Any:
        option = self.options.progress_for(progress)
        if layout.kind == "pickle" and not allow_pickle:
            raise PickleNotAllowedError(key)  # before downloading what cannot be used
        arrays = read_arrays(self._io(), layout, option)
        return kinds.decode(layout.kind, arrays, layout.header["attrs"], key, allow_pickle)

    def _load_tree(self, key: str, allow_pickle: bool, progress: ProgressOption) -> dict:
        tree: dict[str, Any] = {}
        base = self._key(key) + "/"
        below = {full: full[len(self.prefix) :] for full in self.backend.list(base)}
        values = self._load_many(list(below.values()), allow_pickle, progress, key)
        for full, inner in below.items():
            *parents, leaf = full[len(base) :].split("/")
            node = tree
            for name in parents:
                node = node.setdefault(name, {})
                if not isinstance(node, dict):
                    raise CorruptObjectError(full, f"{name!r} is both an object and a prefix")
            node[leaf] = values[inner]
        return tree

    def info(self, key: str) -> ObjectInfo:
        """Kind, size, shape, dtype, chunks, compression and metadata of a stored object.

        Works on encrypted objects without a key too; their metadata (and a sparse
        matrix's shape) is sealed and then reported as empty.
        """
        full = self._key(key)
        try:
            layout = self._raw_layout(full)
        except KeyNotFoundError:
            raise KeyNotFoundError(key, self.url) from None
        if self.options.encryption is not None:
            unlock(layout, self.options.encryption)
        header, attrs = layout.header, layout.header["attrs"]
        data = layout.arrays.get("data")
        shape = dtype = chunks = order = None
        if layout.kind == "array":
            shape, dtype, chunks, order = data.shape, data.dtype, data.chunks, data.order
        elif layout.kind == "sparse":
            shape, dtype = tuple(attrs["shape"]) if "shape" in attrs else None, data.dtype
        first = next(iter(layout.arrays.values()), None)
        return ObjectInfo(
            key=key,
            kind=layout.kind,
            size=layout.size,
            shape=shape,
            dtype=dtype,
            chunks=chunks,
            order=order,
            nchunks=len(layout.index),
            compression=compression_name(first.codec_configs) if first else None,
            encrypted=layout.encrypted,
            key_id=header["encryption"].get("key_id") if layout.encrypted else None,
            metadata=header.get("metadata", {}),
        )

    def verify(self, key: str) -> bool:
        """Check a stored object end to end without decoding it: footer, header, index, magic
        and every chunk's checksum, and, for encrypted objects when the store has the key,
        the sealed header and every chunk's authentication tag (without the key, checksums
        only). Returns True; raises CorruptObjectError or DecryptionError naming the key on
        the first failure. Memory stays bounded (concurrency x request size)."""
        full = self._key(key)
        try:
            layout = self._raw_layout(full)
        except KeyNotFoundError:
            raise KeyNotFoundError(key, self.url) from None
        if self.options.encryption is not None:
            unlock(layout, self.options.encryption)
        self._check_encrypted(full, layout.encrypted)
        verify_object(self._io(), layout)
        return True

    def __contains__(self, key: object) -> bool:
        full = self._key(key)  # type: ignore[arg-type]
        return self.backend.exists(full) or self._is_dir(full)

    def __iter__(self) -> Iterator[str]:
        start = len(self.prefix)
        for full in self.backend.list(self.prefix):
            yield full[start:]

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def ls(self, prefix: str = "") -> list[str]:
        """One level below ``prefix``: keys, and sub-prefixes ending in '/'."""
        base = self.prefix + validate_prefix(prefix)
        keys, prefixes = self.backend.list_dir(base)
        start = len(self.prefix)
        return sorted(k[start:] for k in keys + prefixes)

    def glob(self, pattern: str) -> list[str]:
        """Keys matching ``pattern``: ``*`` and ``?`` within a segment, ``**`` across segments."""
        regex = glob_regex(pattern)
        start = len(self.prefix)
        found = (full[start:] for full in self.backend.list(self.prefix + glob_prefix(pattern)))
        return [key for key in found if regex.match(key)]

    def zarr(self, *, read_only: bool | None = None) -> Any:
        """This store's backend and prefix as a zarr v3 store (``zarr.abc.store.Store``)."""
        from .zarr_store import ZarrStore

        return ZarrStore.from_store(self, read_only=read_only)

    def sub(self, prefix: str) -> Store:
        """A store rooted at ``prefix`` below this one (sharing backend, options and threads)."""
        return Store(
            self.backend, self.prefix + validate_prefix(prefix), self.options, self._runtime
        )

    # -- writing -----------------------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        self.put(key, value)

    def update(
        self, other: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), /, **kwargs: Any
    ) -> None:
        """Store every item of ``other`` (a mapping or (key, value) pairs) and ``kwargs``, as
        ``dict.update`` does, writing up to ``concurrency`` objects at a time (values of more
        than ``chunk_bytes``, whose chunks already move that many at a time, are written
        after the others, one by one, so a batch needs no more memory than its largest
        write). Each object is replaced atomically, as by ``put``. If one fails, the writes
        in flight finish, no others start, and the first error is raised: the objects
        written before it stay written, the rest keep their old values."""
        items = dict(other, **kwargs)
        if items:
            self._check_writable(next(iter(items)))  # before any write
        self._put_many(items, {}, "update")

    def _put_many(self, items: dict[str, Any], options: dict[str, Any], description: str) -> None:
        """``put(key, value, **options)`` for every item: values of up to one chunk
        ``concurrency`` at a time, then larger ones one by one. A larger value already moves
        its chunks ``concurrency`` at a time, and each write in flight holds encoded chunks
        and parts: several at once would multiply the memory of one, and gain nothing."""
        options = dict(options)
        progress = self.options.progress_for(options.pop("progress", None))
        small, large = [], []
        for item in items.items():
            fits = kinds.raw_nbytes(item[1]) <= self.options.chunk_bytes
            (small if fits else large).append(item)
        with BatchProgress(progress, len(items), description) as batch:
            each = batch.object_progress()

            def put(item: tuple[str, Any]) -> None:
                self.put(*item, progress=each, **options)
                batch.object_done()

            self._runtime.run_each(put, small)
            for item in large:
                put(item)

    def put(
        self,
        key: str,
        value: Any,
        *,
        compression: Compression = _UNSET,
        chunks: int | tuple[int, ...] | None = None,
        metadata: dict[str, Any] | None = None,
        progress: ProgressOption = None,
        encrypt: bool | None = None,
    ) -> None:
        """Store ``value`` under ``key``, replacing what was there (atomically per object).

        compression: overrides the store's compression for this write.
        chunks: chunk shape for arrays (an int for every axis, or a tuple); default automatic.
        metadata: a JSON-able dict kept in the object's header (see ``info``).
        encrypt: None (default) encrypts when the store has an ``encryption`` key; True
            requires one; False writes this object unencrypted.
        """
        self._check_writable(key)
        full = self._key(key)
        master = self._write_key(key, encrypt)
        kind = kinds.classify(value)
        if kind == "tree":
            self._put_tree(
                key,
                value,
                compression=compression,
                chunks=chunks,
                metadata=metadata,
                progress=progress,
                encrypt=master is not None,
            )
            return
        if chunks is not None and kind != "array":
            raise ValueError(f"chunks= applies to arrays; {key!r} is stored as {kind}")
        _check_metadata(key, metadata)
        encoded = kinds.encode(value, full, allow_pickle=self.options.allow_pickle)
        compression = self.options.compression if compression is _UNSET else compression
        parts = [
            ArrayPart(
                name,
                array,
                normalize_chunks(
                    chunks, array.shape, array.dtype.itemsize, self.options.chunk_bytes
                ),
                resolve(compression, array.dtype),
                "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C",
            )
            for name, array in encoded.arrays.items()
        ]
        total = sum(p.array.nbytes for p in parts)
        option = self.options.progress_for(progress)
        with Progress(option, total, key) as bar:
            write_object(
                self.backend,
                full,
                kind=encoded.kind,
                parts=parts,
                attrs=encoded.attrs,
                metadata=metadata,
                executor=self._runtime.executor,
                window=_encode_window(self.options.concurrency),
                on_chunk=bar.update,
                encryption=master,
            )

    def _write_key(self, key: str, encrypt: bool | None) -> EncryptionKey | None:
        keyring = self.options.encryption
        if encrypt is None or encrypt is False:
            return keyring.current if keyring is not None and encrypt is None else None
        if keyring is None:
            raise ValueError(
                f"cannot encrypt {key!r}: the store has no key; open it with "
                "encryption=<key> (e.g. ccstore.generate_key())"
            )
        return keyring.current

    def _put_tree(self, key: str, tree: dict, **options: Any) -> None:
        """Store each leaf of a nested dict under ``key/<path>`` (concurrently, as
        ``update``); drop what the old value had."""
        leaves = {f"{key}/{path}": value for path, value in _leaves(key, tree)}
        self._put_many(leaves, options, key)
        written = {self._key(leaf) for leaf in leaves}
        full = self._key(key)
        stale = [k for k in self.backend.list(full + "/") if k not in written]
        if self.backend.exists(full):
            stale.append(full)
        self.backend.delete_many(stale)

    def __delitem__(self, key: str) -> None:
        """Delete the object under ``key``, or every object below it if ``key`` is a prefix."""
        self._check_writable(key)
        full = self._key(key)
        try:
            self.backend.delete(full)
        except KeyNotFoundError:
            below = list(self.backend.list(full + "/"))
            if not below:
                raise KeyNotFoundError(key, self.url) from None
            self.backend.delete_many(below)

    def copy(self, src: str, dst: str) -> None:
        """Copy the object (or every object below the prefix, ``concurrency`` at a time)
        ``src`` to ``dst``."""
        self._transfer(src, dst, move=False)

    def move(self, src: str, dst: str) -> None:
        """Move the object (or every object below the prefix, ``concurrency`` at a time)
        ``src`` to ``dst``."""
        self._transfer(src, dst, move=True)

    def _transfer(self, src: str, dst: str, *, move: bool) -> None:
        self._check_writable(dst)
        source, target = self._key(src), self._key(dst)
        if self.backend.exists(source):
            self._relocate(source, target, move)
            return
        below = list(self.backend.list(source + "/"))
        if not below:
            raise KeyNotFoundError(src, self.url)

        def relocate(full: str) -> None:
            self._relocate(full, target + full[len(source) :], move)

        self._runtime.run_each(relocate, below)

    def _relocate(self, source: str, target: str, move: bool) -> None:
        """Copy or move one object; encrypted objects are re-bound to their new key (their
        header is rewritten, their chunks copied as they are)."""
        layout = self._encrypted_layout(source)
        if layout is None:
            (self.backend.move if move else self.backend.copy)(source, target)
            return
        header = rewrap_header(
            layout.header, source, self.options.encryption, new_object_key=target
        )
        self.backend.copy_with_tail(
            source, target, layout.data_end, layout.tail_with_header(header)
        )
        if move:
            self.backend.delete(source)

    def _encrypted_layout(self, full_key: str) -> ObjectLayout | None:
        try:
            layout = self._raw_layout(full_key)
        except CorruptObjectError:  # not a ccstore object: nothing is bound to its key
            return None
        return layout if layout.encrypted else None

    def rotate_key(self, new_key: KeyLike, *, prefix: str = "") -> int:
        """Re-wrap every encrypted object below ``prefix`` with ``new_key``; returns how many
        objects were rewritten. Objects the keyring cannot open are left as they are and
        reported together in a CCStoreError once the others are done (rerunning is safe).

        Only each object's small header changes (its data key is wrapped anew); chunks are
        copied as they are (server-side where the backend can), never decrypted. The store's
        keyring must open the objects. Run it while nobody writes those keys: an object
        replaced during its rotation could come out corrupt (and is then detected as such).
        """
        new = as_keyring(new_key).current
        base = self.prefix + validate_prefix(prefix)
        keys = list(self.backend.list(base))
        if keys:
            self._check_writable(keys[0][len(self.prefix) :])  # before any write

        def rotate(full: str) -> bool | CCStoreError:
            """True once rotated, False if there was nothing to do, or the error to report."""
            layout = self._encrypted_layout(full)
            if layout is None or layout.header["encryption"].get("key_id") == new.key_id:
                return False
            try:
                header = rewrap_header(layout.header, full, self.options.encryption, new_master=new)
            except CCStoreError as error:  # rotate the rest; report these at the end
                return error
            self.backend.copy_with_tail(
                full, full, layout.data_end, layout.tail_with_header(header)
            )
            return True

        outcomes = list(self._runtime.for_each(rotate, keys))
        rotated = sum(outcome is True for outcome in outcomes)
        failed = [outcome for outcome in outcomes if isinstance(outcome, CCStoreError)]
        if failed:
            details = "; ".join(str(e) for e in failed[:5])
            raise CCStoreError(
                f"rotated {rotated} object(s); {len(failed)} could not be opened: {details}"
            )
        return rotated


def _check_metadata(key: str, metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise UnsupportedValueError(
            f"metadata for {key!r} must be a dict, not {type(metadata).__name__}"
        )
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise UnsupportedValueError(f"metadata for {key!r} must be JSON-able: {e}") from None


def _leaves(key: str, tree: dict, path: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in tree.items():
        if not isinstance(name, str) or "/" in name or not name:
            raise InvalidKeyError(
                f"{key}/{path}{name}",
                "dict keys stored as key segments must be non-empty str without '/'",
            )
        if type(value) is dict and value:
            yield from _leaves(key, value, f"{path}{name}/")
        else:
            yield f"{path}{name}", value


def open(url: str | os.PathLike[str], **options: Any) -> Store:
    """Open the store a URL names: ``file:///abs/path`` or a plain path, ``memory://[name]``,
    ``s3://bucket/prefix``, ``gdrive://Folder/Sub``.

    Store options (see StoreOptions): compression, chunk_bytes, read_only, allow_pickle,
    concurrency, page_concurrency, coalesce_gap, max_request_bytes, tail_bytes, progress,
    encryption, require_encryption. Other keyword
    arguments go to the backend (e.g. ``fsync`` for local stores, ``endpoint_url`` for S3).
    """
    remaining = dict(options)
    backend, prefix = backend_from_url(os.fspath(url), remaining)
    store_options = StoreOptions.pop_from(remaining)
    if remaining:
        unknown = ", ".join(sorted(remaining))
        raise TypeError(f"unknown option(s) for {backend.scheme}:// stores: {unknown}")
    return Store(backend, prefix, store_options)


def rotate_key(
    store: Store | str | os.PathLike[str],
    new_key: KeyLike,
    old_keys: KeyLike | list[KeyLike] | Keyring,
    *,
    prefix: str = "",
    **options: Any,
) -> int:
    """Re-wrap every encrypted object below ``prefix`` of a store (or URL) from ``old_keys``
    to ``new_key`` without rewriting their data; returns how many objects changed.
    Afterwards the objects open with ``new_key`` alone."""
    old = as_keyring(old_keys)
    if not isinstance(store, Store):
        store = open(store, **options)
    elif options:
        raise TypeError("options apply when a URL is given, not a Store")
    keyring = Keyring([*old.keys, new_key])
    return Store(store.backend, store.prefix, store.options.updated(encryption=keyring)).rotate_key(
        new_key, prefix=prefix
    )
