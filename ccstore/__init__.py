"""ccstore: numpy arrays and friends in cloud object stores, as a Python dict.

store = ccstore.open("s3://bucket/prefix")     # or file://, a path, memory://, gdrive://
store["a"] = array                             # streamed up in chunks, bounded memory
x = store["a"]                                 # LazyArray: shape and dtype, no data yet
x[100:200, ::4]                                # fetches only the chunks this touches
"""

from __future__ import annotations

from .backends import register_backend
from .backends.base import Backend, ObjectStat
from .encryption import EncryptionKey, Keyring, PassphraseKey, generate_key
from .errors import (
    BackendError,
    CCStoreError,
    CorruptObjectError,
    DecryptionError,
    EncryptedObjectError,
    InvalidKeyError,
    KeyExistsError,
    KeyNotFoundError,
    PickleNotAllowedError,
    ReadOnlyError,
    UnencryptedObjectError,
    UnsupportedValueError,
)
from .lazy import LazyArray
from .options import StoreOptions
from .stats import Stats, StatsSnapshot
from .store import ObjectInfo, Store, open, rotate_key

__version__ = "0.1.0"


def __getattr__(name: str):
    # zarr is an optional extra: import the adapter only when it is asked for.
    if name == "ZarrStore":
        from .zarr_store import ZarrStore

        return ZarrStore
    raise AttributeError(f"module 'ccstore' has no attribute {name!r}")


__all__ = [
    "Backend",
    "BackendError",
    "CCStoreError",
    "CorruptObjectError",
    "DecryptionError",
    "EncryptedObjectError",
    "EncryptionKey",
    "InvalidKeyError",
    "KeyExistsError",
    "KeyNotFoundError",
    "Keyring",
    "LazyArray",
    "ObjectInfo",
    "ObjectStat",
    "PassphraseKey",
    "PickleNotAllowedError",
    "ReadOnlyError",
    "Stats",
    "StatsSnapshot",
    "Store",
    "StoreOptions",
    "UnencryptedObjectError",
    "UnsupportedValueError",
    "ZarrStore",
    "__version__",
    "generate_key",
    "open",
    "register_backend",
    "rotate_key",
]
