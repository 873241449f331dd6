"""The ccstore exception hierarchy: every error a user can catch derives from CCStoreError."""

from __future__ import annotations

__all__ = [
    "BackendError",
    "CCStoreError",
    "CorruptObjectError",
    "DecryptionError",
    "EncryptedObjectError",
    "InvalidKeyError",
    "KeyExistsError",
    "KeyNotFoundError",
    "PickleNotAllowedError",
    "ReadOnlyError",
    "UnencryptedObjectError",
    "UnsupportedValueError",
]


class CCStoreError(Exception):
    """Base class of every ccstore error."""


class KeyNotFoundError(CCStoreError, KeyError):
    """No object is stored under the key (a KeyError, so Mapping semantics hold)."""

    def __init__(self, key: str, where: str = "") -> None:
        self.key = key
        location = f" in {where}" if where else ""
        super().__init__(f"no object under key {key!r}{location}")

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message, quoting it twice.
        return str(self.args[0])


class KeyExistsError(CCStoreError, FileExistsError):
    """A conditional write found an object already stored under the key."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"an object already exists under key {key!r}")


class InvalidKeyError(CCStoreError, ValueError):
    """The key is not a valid ccstore key (see ``ccstore.keys.validate_key``)."""

    def __init__(self, key: object, reason: str) -> None:
        self.key = key
        super().__init__(f"invalid key {key!r}: {reason}")


class CorruptObjectError(CCStoreError):
    """A stored object is truncated, tampered with, or not in a format ccstore can read."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        super().__init__(f"object {key!r} is corrupt or unreadable: {reason}")


class UnencryptedObjectError(CorruptObjectError):
    """The object is stored unencrypted, and the store was opened with require_encryption."""

    def __init__(self, key: str) -> None:
        super().__init__(
            key,
            "it is stored unencrypted, and this store requires encryption "
            "(require_encryption=True): it may have been put there in place of the real one",
        )


class UnsupportedValueError(CCStoreError, TypeError):
    """The value cannot be stored the way it was asked to be."""


class PickleNotAllowedError(CCStoreError):
    """Reading (or, for object arrays, writing) would need pickle, and it was not allowed."""

    def __init__(self, key: str, action: str = "read") -> None:
        self.key = key
        super().__init__(
            f"object {key!r} is a pickle; unpickling runs arbitrary code, so it needs explicit "
            f"opt-in: pass allow_pickle=True to ccstore.open() or to load()"
            if action == "read"
            else f"value for {key!r} is an object-dtype array, which can only be stored by "
            f"pickling; pass allow_pickle=True to store it as a pickle"
        )


class ReadOnlyError(CCStoreError, PermissionError):
    """A write was attempted on a store opened with read_only=True."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"cannot modify {key!r}: the store was opened read_only=True")


class EncryptedObjectError(CCStoreError):
    """The object is encrypted and the store has no key to decrypt it."""

    def __init__(self, key: str, key_id: str) -> None:
        self.key = key
        self.key_id = key_id
        super().__init__(
            f"object {key!r} is encrypted (key id {key_id!r}); open the store with "
            f"encryption=<key or keyring> to read it"
        )


class DecryptionError(CCStoreError):
    """Decryption failed: wrong key, or the ciphertext was tampered with."""

    def __init__(self, key: str, key_id: str, reason: str = "") -> None:
        self.key = key
        self.key_id = key_id
        detail = f": {reason}" if reason else ""
        super().__init__(f"cannot decrypt object {key!r} with key id {key_id!r}{detail}")


class BackendError(CCStoreError):
    """The storage service failed, and retrying (where configured) did not help."""
