"""Any ccstore backend as a zarr v3 store (``zarr.abc.store.Store``).

Zarr keys map one to one onto object names below the store's prefix: no ccstore container and
no sidecar objects, so other zarr implementations read what this writes and vice versa. Every
backend call runs in a bounded thread pool, never on the event loop. Byte ranges become ranged
reads; listings are the backend's prefix and delimiter listings.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype

from .backends import base
from .errors import InvalidKeyError, KeyExistsError, KeyNotFoundError
from .forks import renew_after_fork
from .store import Store as CCStore
from .store import open as open_store

__all__ = ["ZarrStore"]

T = TypeVar("T")


def _byte_range(byte_range: ByteRequest | None) -> base.ByteRange | None:
    if byte_range is None:
        return None
    if isinstance(byte_range, RangeByteRequest):
        return base.RangeByteRequest(byte_range.start, byte_range.end)
    if isinstance(byte_range, OffsetByteRequest):
        return base.OffsetByteRequest(byte_range.offset)
    if isinstance(byte_range, SuffixByteRequest):
        return base.SuffixByteRequest(byte_range.suffix)
    raise TypeError(f"Unexpected byte_range, got {byte_range!r}")  # zarr tests this message


class ZarrStore(Store):
    """A zarr v3 store over the backend and prefix that ``ccstore.open(url, **options)`` names.

    ``ccstore.ZarrStore("s3://bucket/data.zarr", endpoint_url=...)`` or ``store.zarr()``.
    ``set_if_not_exists`` is a real conditional write on backends that have one (S3's
    ``If-None-Match: *``, local files, memory); elsewhere (Google Drive) it checks and then
    writes, which concurrent writers can race.
    """

    supports_writes = True
    supports_deletes = True
    supports_listing = True
    supports_partial_writes = False

    def __init__(
        self,
        url: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        store: CCStore | None = None,
        **options: Any,
    ) -> None:
        super().__init__(read_only=read_only)
        if store is None:
            if url is None:
                raise TypeError("ZarrStore needs a URL (or store=<ccstore.Store>)")
            store = open_store(url, **options)
        if store.options.encryption is not None:
            # zarr writes its own objects; they would leave this process unencrypted.
            raise ValueError(
                "ccstore encryption applies to ccstore objects, not to zarr keys: open the "
                "zarr store without encryption= (zarr data would be stored in the clear)"
            )
        self._store = store
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        renew_after_fork(self)

    def _after_fork(self) -> None:
        self._pool = None
        self._pool_lock = threading.Lock()

    @classmethod
    def from_store(cls, store: CCStore, *, read_only: bool | None = None) -> ZarrStore:
        """A zarr store over an open ccstore Store's backend and prefix."""
        return cls(store=store, read_only=store.read_only if read_only is None else read_only)

    @property
    def _backend(self) -> base.Backend:
        return self._store.backend

    def _full(self, key: str) -> str:
        return self._store.prefix + key

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                workers = self._store.options.concurrency
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="ccstore-zarr")
            return self._pool

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), partial(fn, *args, **kwargs))

    # -- identity -----------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ZarrStore)
            and self._store.url == other._store.url
            and self.read_only == other.read_only
        )

    def __hash__(self) -> int:
        return hash((self._store.url, self.read_only))

    def __repr__(self) -> str:
        return f"ZarrStore({self._store.url!r}, read_only={self.read_only})"

    def __str__(self) -> str:
        return self._store.url

    def __getstate__(self) -> dict[str, Any]:
        return {"store": self._store, "read_only": self.read_only, "is_open": self._is_open}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(store=state["store"], read_only=state["read_only"])
        self._is_open = state["is_open"]

    def with_read_only(self, read_only: bool = False) -> ZarrStore:
        return type(self)(store=self._store, read_only=read_only)

    def close(self) -> None:
        super().close()
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None

    # -- reading ------------------------------------------------------------------------------

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        await self._ensure_open()
        try:
            data = await self._call(self._backend.read, self._full(key), _byte_range(byte_range))
        except (KeyNotFoundError, InvalidKeyError):  # a key no backend can hold is absent
            return None
        return prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        # Concurrent: the thread pool bounds how many requests are in flight.
        return list(await asyncio.gather(*(self.get(key, prototype, r) for key, r in key_ranges)))

    async def exists(self, key: str) -> bool:
        await self._ensure_open()
        try:
            return bool(await self._call(self._backend.exists, self._full(key)))
        except InvalidKeyError:
            return False

    async def getsize(self, key: str) -> int:
        await self._ensure_open()
        try:
            return int((await self._call(self._backend.head, self._full(key))).size)
        except (KeyNotFoundError, InvalidKeyError):
            raise FileNotFoundError(key) from None

    # -- writing ------------------------------------------------------------------------------

    async def set(self, key: str, value: Buffer) -> None:
        await self._ensure_open()
        self._check_writable()
        if not isinstance(value, Buffer):
            raise TypeError(f"ZarrStore.set(): expected a zarr Buffer, got {type(value).__name__}")
        await self._call(self._backend.write, self._full(key), [value.as_buffer_like()])

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        await self._ensure_open()
        self._check_writable()
        if not self._backend.supports_conditional_write:
            await super().set_if_not_exists(key, value)
            return
        try:
            await self._call(
                self._backend.write, self._full(key), [value.as_buffer_like()], if_absent=True
            )
        except KeyExistsError:
            pass

    async def delete(self, key: str) -> None:
        await self._ensure_open()
        self._check_writable()
        try:
            await self._call(self._backend.delete, self._full(key))
        except KeyNotFoundError:
            pass

    async def delete_dir(self, prefix: str) -> None:
        await self._ensure_open()
        self._check_writable()
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        keys = await self._call(lambda: list(self._backend.list(self._full(prefix))))
        await self._call(self._backend.delete_many, keys)

    # -- synchronous access: zarr uses it when present, skipping the event loop -----------

    def get_sync(
        self,
        key: str,
        *,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        self._is_open = True
        prototype = prototype or default_buffer_prototype()
        try:
            data = self._backend.read(self._full(key), _byte_range(byte_range))
        except (KeyNotFoundError, InvalidKeyError):
            return None
        return prototype.buffer.from_bytes(data)

    def set_sync(self, key: str, value: Buffer) -> None:
        self._is_open = True
        self._check_writable()
        self._backend.write(self._full(key), [value.as_buffer_like()])

    def delete_sync(self, key: str) -> None:
        self._is_open = True
        self._check_writable()
        try:
            self._backend.delete(self._full(key))
        except KeyNotFoundError:
            pass

    # -- listing ------------------------------------------------------------------------------

    async def _listed(self, prefix: str) -> list[str]:
        start = len(self._store.prefix)
        keys = await self._call(lambda: list(self._backend.list(self._full(prefix))))
        return [key[start:] for key in keys]

    async def list(self) -> AsyncIterator[str]:
        for key in await self._listed(""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for key in await self._listed(prefix):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        prefix = prefix.rstrip("/")
        base_prefix = self._full(prefix + "/" if prefix else "")
        keys, prefixes = await self._call(self._backend.list_dir, base_prefix)
        start = len(base_prefix)
        for name in [k[start:] for k in keys] + [p[start:].rstrip("/") for p in prefixes]:
            yield name
