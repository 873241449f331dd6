"""Client-side encryption: master keys, keyrings, and AES-256-GCM per chunk with envelope keys.

Every encrypted object gets a fresh random 256-bit data key. Chunks are sealed with it under
AES-256-GCM; the data key itself is stored in the object's header wrapped (AES-256-GCM) by a
master key, so rotating a master key rewrites a few hundred header bytes, never the chunks.
The full scheme, and why nonces never repeat, is in docs/encryption.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import CorruptObjectError, DecryptionError, EncryptedObjectError
from .transfer import ThreadScratch

__all__ = [
    "ALGORITHM",
    "DEFAULT_KEY_ENV",
    "EncryptionKey",
    "KeyLike",
    "Keyring",
    "ObjectCipher",
    "PassphraseKey",
    "as_keyring",
    "generate_key",
    "open_header",
    "rewrap_header",
    "seal_header",
]

ALGORITHM = "AES-256-GCM"
KEY_BYTES = 32
TAG_BYTES = 16
DEFAULT_KEY_ENV = "CCSTORE_ENCRYPTION_KEY"

_CHUNK_NONCE = struct.Struct("<IQ")  # (0, global chunk index): unique per data key
_SEALED_NONCE = b"\xff" * 12  # never a chunk nonce: chunk nonces start with four zero bytes
_WRAP_NONCE_BYTES = 12
# scrypt costs a reader accepts from a header: bounds what a hostile object can make us compute.
_SCRYPT_LIMITS = {"n": 1 << 22, "r": 32, "p": 16}


def generate_key() -> bytes:
    """32 random bytes from the OS: a master key usable directly as ``encryption=``."""
    return os.urandom(KEY_BYTES)


def _fingerprint(secret: bytes) -> str:
    """A key id derived from the key (an HMAC: it reveals nothing about the key)."""
    return "k-" + hmac.new(secret, b"ccstore key id v1", hashlib.sha256).hexdigest()[:16]


def _parse_key_text(text: str, source: str) -> bytes:
    """A key written as 64 hex digits or base64 of 32 bytes."""
    text = text.strip()
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            secret = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(secret) == KEY_BYTES:
            return secret
    raise ValueError(
        f"{source} does not hold a 32-byte key (expected 64 hex digits or base64 of 32 bytes; "
        "ccstore.generate_key().hex() makes one)"
    )


class EncryptionKey:
    """A 32-byte master key and its id (stored in headers to find the key; never the key).

    ``EncryptionKey(secret)`` with 32 bytes; ``from_file``, ``from_env`` and
    ``from_passphrase`` for the other sources. The id defaults to a fingerprint of the key.
    """

    def __init__(self, secret: bytes, key_id: str | None = None) -> None:
        secret = bytes(secret)
        if len(secret) != KEY_BYTES:
            raise ValueError(f"an encryption key is {KEY_BYTES} bytes, got {len(secret)}")
        self._secret = secret
        self.key_id = key_id or _fingerprint(secret)
        self._aead = AESGCM(secret)
        self._kdf: dict[str, Any] | None = None  # how a passphrase gave this key, if it did

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], key_id: str | None = None) -> EncryptionKey:
        """A key kept in a file: 32 raw bytes, 64 hex digits, or base64."""
        data = Path(path).read_bytes()
        if len(data) == KEY_BYTES:
            return cls(data, key_id)
        try:
            return cls(_parse_key_text(data.decode("ascii"), f"key file {str(path)!r}"), key_id)
        except UnicodeDecodeError:
            raise ValueError(f"key file {str(path)!r} does not hold a 32-byte key") from None

    @classmethod
    def from_env(cls, name: str = DEFAULT_KEY_ENV, key_id: str | None = None) -> EncryptionKey:
        """A key from an environment variable holding 64 hex digits or base64."""
        text = os.environ.get(name)
        if text is None:
            raise KeyError(f"environment variable {name!r} is not set")
        return cls(_parse_key_text(text, f"environment variable {name!r}"), key_id)

    @classmethod
    def from_passphrase(
        cls, passphrase: str | bytes, *, n: int = 1 << 17, r: int = 8, p: int = 1
    ) -> PassphraseKey:
        """A key derived from a passphrase with scrypt (salt and parameters go in each header)."""
        return PassphraseKey(passphrase, n=n, r=r, p=p)

    def describe(self) -> dict[str, Any]:
        """What a header records about this key: its id, and scrypt parameters if derived."""
        if self._kdf is None:
            return {"key_id": self.key_id}
        return {"key_id": self.key_id, "kdf": dict(self._kdf)}

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_WRAP_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, aad)

    def unwrap(self, blob: bytes, aad: bytes) -> bytes:
        """The data key; raises cryptography's InvalidTag for a wrong key or tampered header."""
        nonce, sealed = blob[:_WRAP_NONCE_BYTES], blob[_WRAP_NONCE_BYTES:]
        return self._aead.decrypt(nonce, sealed, aad)

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and hmac.compare_digest(self._secret, other._secret)  # type: ignore[attr-defined]
            and self.key_id == other.key_id  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key_id}>"  # never the key itself

    def __reduce__(self) -> Any:
        return (type(self), (self._secret, self.key_id))


class PassphraseKey(EncryptionKey):
    """A master key derived from a passphrase with scrypt.

    Each new key draws a random 16-byte salt; headers record salt and cost parameters, so a
    reader derives the same key from the passphrase alone (derivations are cached per salt).
    The key id is the fingerprint of the derived key, so it differs from salt to salt.
    """

    def __init__(
        self,
        passphrase: str | bytes,
        *,
        n: int = 1 << 17,
        r: int = 8,
        p: int = 1,
        salt: bytes | None = None,
    ) -> None:
        if isinstance(passphrase, str):
            passphrase = passphrase.encode("utf-8")
        if not passphrase:
            raise ValueError("the passphrase is empty")
        self._passphrase = bytes(passphrase)
        self.kdf = {"name": "scrypt", "n": n, "r": r, "p": p}
        self.salt = os.urandom(16) if salt is None else bytes(salt)
        self._derived: dict[tuple, EncryptionKey] = {}
        self._lock = threading.Lock()
        derived = self._derive(self.salt, n, r, p)
        super().__init__(derived._secret)
        self._kdf = derived._kdf

    def _derive(self, salt: bytes, n: int, r: int, p: int) -> EncryptionKey:
        with self._lock:
            cached = self._derived.get((salt, n, r, p))
            if cached is None:
                secret = Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p).derive(self._passphrase)
                cached = self._derived[(salt, n, r, p)] = EncryptionKey(secret)
                salt_text = base64.b64encode(salt).decode()
                cached._kdf = {"name": "scrypt", "n": n, "r": r, "p": p, "salt": salt_text}
            return cached

    def for_header(self, kdf: dict[str, Any]) -> EncryptionKey:
        """The key this passphrase gives with a header's salt and scrypt parameters."""
        try:
            n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
            salt = base64.b64decode(kdf["salt"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            raise ValueError(f"unreadable scrypt parameters ({e})") from None
        limits = _SCRYPT_LIMITS
        if not (1 < n <= limits["n"] and 0 < r <= limits["r"] and 0 < p <= limits["p"]):
            raise ValueError(f"scrypt parameters out of bounds: n={n}, r={r}, p={p}")
        return self._derive(salt, n, r, p)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PassphraseKey)
            and hmac.compare_digest(self._passphrase, other._passphrase)
            and (self.kdf, self.salt) == (other.kdf, other.salt)
        )

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __reduce__(self) -> Any:
        return (_passphrase_key, (self._passphrase, self.kdf, self.salt))


def _passphrase_key(passphrase: bytes, kdf: dict[str, Any], salt: bytes) -> PassphraseKey:
    return PassphraseKey(passphrase, n=kdf["n"], r=kdf["r"], p=kdf["p"], salt=salt)


KeyLike = bytes | bytearray | EncryptionKey


def _as_key(value: Any) -> EncryptionKey:
    if isinstance(value, EncryptionKey):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return EncryptionKey(bytes(value))
    if isinstance(value, str):
        raise TypeError(
            "a str is not an encryption key: pass 32 bytes (ccstore.generate_key()), "
            "EncryptionKey.from_env(name), EncryptionKey.from_file(path) or "
            "EncryptionKey.from_passphrase(passphrase)"
        )
    raise TypeError(f"not an encryption key: {type(value).__name__}")


class Keyring:
    """Master keys by id: the first (or ``current``) encrypts new objects, all of them decrypt.

    A reader looks a header's key id up; when no key has that id (keys named differently by
    another writer), it tries every key, which is cheap: only the small wrapped data key is
    decrypted.
    """

    def __init__(self, keys: Iterable[KeyLike], *, current: KeyLike | None = None) -> None:
        self.keys = [_as_key(k) for k in keys]
        if current is not None:
            current = _as_key(current)
            self.keys = [current] + [k for k in self.keys if k != current]
        if not self.keys:
            raise ValueError("a keyring needs at least one key")

    @property
    def current(self) -> EncryptionKey:
        """The key new objects are encrypted with."""
        return self.keys[0]

    def candidates(self, block: dict[str, Any]) -> list[EncryptionKey]:
        """Keys to try for a header's encryption block, the one with its key id first."""
        kdf = block.get("kdf")
        found = []
        for key in self.keys:
            if kdf is not None and isinstance(key, PassphraseKey):
                try:
                    found.append(key.for_header(kdf))
                except ValueError:
                    continue
            elif kdf is None and not isinstance(key, PassphraseKey):
                found.append(key)
        found.sort(key=lambda k: k.key_id != block.get("key_id"))
        return found

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Keyring) and self.keys == other.keys

    def __hash__(self) -> int:
        return hash(tuple(k.key_id for k in self.keys))

    def __repr__(self) -> str:
        return f"<Keyring {[k.key_id for k in self.keys]}>"


def as_keyring(value: Any) -> Keyring | None:
    """The keyring an ``encryption=`` option names: None, a key, bytes, a list, or a Keyring."""
    if value is None or isinstance(value, Keyring):
        return value
    if isinstance(value, (list, tuple)):
        return Keyring(value)
    return Keyring([value])


@dataclass
class ObjectCipher:
    """Seals and opens one object's chunks with its data key.

    Nonce = (0, global chunk index): unique because each object write draws a fresh data key
    and encrypts each chunk index once. The associated data binds the chunk index and the
    digest of the object's header, so chunks cannot be reordered, moved between objects or
    paired with an altered header.
    """

    data_key: bytes
    digest: bytes

    def _aad(self, index: int) -> bytes:
        return b"ccstore/chunk\0" + self.digest + struct.pack("<Q", index)

    def seal(self, index: int, data: Any) -> memoryview:
        """The stored bytes of chunk ``index`` (ciphertext followed by the 16-byte tag)."""
        data = memoryview(data).cast("B")
        size = len(data)
        # AESGCM.encrypt zero-fills its output first: a whole extra pass over fresh memory.
        out = memoryview(np.empty(size + TAG_BYTES, np.uint8))
        nonce = _CHUNK_NONCE.pack(0, index)
        encryptor = Cipher(algorithms.AES(self.data_key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(self._aad(index))
        encryptor.update_into(data, out[:size])
        encryptor.finalize()
        out[size:] = encryptor.tag
        return out

    def open(self, index: int, data: memoryview) -> memoryview:
        """The plaintext of chunk ``index``, in a per-thread buffer valid until this thread's
        next ``open``; raises InvalidTag if the chunk is not what was sealed there."""
        out = _PLAINTEXT.get(max(len(data) - TAG_BYTES, 0))
        self.open_into(index, data, [out])
        return out

    def open_into(self, index: int, data: memoryview, outputs: list[memoryview]) -> None:
        """Decrypt chunk ``index`` straight into ``outputs`` (consecutive pieces of its
        plaintext, e.g. the runs of its region in the result array); raises InvalidTag, after
        which the outputs hold garbage and must be discarded."""
        size = len(data) - TAG_BYTES
        if size < 0 or size != sum(len(o) for o in outputs):
            raise InvalidTag()
        decryptor = Cipher(
            algorithms.AES(self.data_key),
            modes.GCM(_CHUNK_NONCE.pack(0, index), bytes(data[size:])),
        ).decryptor()
        decryptor.authenticate_additional_data(self._aad(index))
        position = 0
        for out in outputs:
            decryptor.update_into(data[position : position + len(out)], out)
            position += len(out)
        decryptor.finalize()


_PLAINTEXT = ThreadScratch()


def header_digest(header: dict[str, Any]) -> bytes:
    """SHA-256 of the header without its encryption block, in canonical JSON."""
    core = {k: v for k, v in header.items() if k != "encryption"}
    text = json.dumps(core, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).digest()


def _wrap_aad(object_key: str, digest: bytes, block: dict[str, Any]) -> bytes:
    """What wrapping a data key authenticates: the key the object is stored under, the header
    digest, and the rest of the encryption block (algorithm, key id, scrypt parameters)."""
    described = {k: v for k, v in block.items() if k != "wrapped_key"}
    text = json.dumps(described, sort_keys=True, separators=(",", ":"))
    return b"ccstore/data-key\0" + object_key.encode("utf-8") + b"\0" + digest + text.encode()


def seal_header(
    header: dict[str, Any], object_key: str, master: EncryptionKey
) -> tuple[dict[str, Any], ObjectCipher]:
    """Encrypt a new object's header: attrs and metadata sealed, a fresh data key wrapped.

    Returns the header to store and the cipher for its chunks.
    """
    data_key = os.urandom(KEY_BYTES)
    payload = json.dumps(
        {"attrs": header["attrs"], "metadata": header["metadata"]}, allow_nan=False
    ).encode()
    sealed = AESGCM(data_key).encrypt(_SEALED_NONCE, payload, b"ccstore/sealed")
    core = dict(header, attrs={}, metadata={}, sealed=base64.b64encode(sealed).decode())
    digest = header_digest(core)
    return _with_wrapped_key(core, object_key, master, data_key, digest), ObjectCipher(
        data_key, digest
    )


def _with_wrapped_key(
    core: dict[str, Any], object_key: str, master: EncryptionKey, data_key: bytes, digest: bytes
) -> dict[str, Any]:
    block = {"algorithm": ALGORITHM, **master.describe(), "object_key": object_key}
    wrapped = master.wrap(data_key, _wrap_aad(object_key, digest, block))
    block["wrapped_key"] = base64.b64encode(wrapped).decode()
    return dict(core, encryption=block)


def open_header(
    header: dict[str, Any], object_key: str, keyring: Keyring | None
) -> tuple[dict[str, Any], ObjectCipher]:
    """Unwrap an encrypted object's data key and unseal its attrs and metadata.

    Returns (header with attrs and metadata restored, cipher for the chunks). Raises
    EncryptedObjectError without a keyring and DecryptionError when no key opens it.
    """
    block = header["encryption"]
    key_id = str(block.get("key_id", "?"))
    if keyring is None:
        raise EncryptedObjectError(object_key, key_id)
    if block.get("algorithm") != ALGORITHM:
        raise CorruptObjectError(object_key, f"unknown encryption {block.get('algorithm')!r}")
    try:
        wrapped = base64.b64decode(block["wrapped_key"], validate=True)
        sealed = base64.b64decode(header["sealed"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise CorruptObjectError(object_key, "unreadable encryption header") from None
    digest = header_digest(header)
    data_key, _ = _unwrap(block, wrapped, object_key, digest, keyring)
    try:
        payload = AESGCM(data_key).decrypt(_SEALED_NONCE, sealed, b"ccstore/sealed")
        fields = json.loads(payload)
    except (InvalidTag, ValueError):
        raise DecryptionError(object_key, key_id, "the sealed attributes do not open") from None
    opened = dict(header, attrs=fields["attrs"], metadata=fields["metadata"])
    return opened, ObjectCipher(data_key, digest)


def _unwrap(
    block: dict[str, Any], wrapped: bytes, object_key: str, digest: bytes, keyring: Keyring
) -> bytes:
    key_id = str(block.get("key_id", "?"))
    candidates = keyring.candidates(block)
    aad = _wrap_aad(object_key, digest, block)
    for key in candidates:
        try:
            return key.unwrap(wrapped, aad), key
        except InvalidTag:
            continue
    written_as = block.get("object_key")
    if written_as != object_key:
        reason = (
            f"it was written under key {written_as!r}: encrypted objects are bound to their "
            "key, so copy or move them with Store.copy/Store.move, not outside ccstore"
        )
    elif any(k.key_id == key_id for k in candidates):
        reason = "the header was altered (the key with this id does not open it)"
    else:
        ids = ", ".join(k.key_id for k in candidates) or "none"
        hint = "; wrong passphrase?" if "kdf" in block else ""
        reason = f"no key in the keyring opens it (tried {ids}{hint})"
    raise DecryptionError(object_key, key_id, reason)


def rewrap_header(
    header: dict[str, Any],
    object_key: str,
    keyring: Keyring | None,
    *,
    new_object_key: str | None = None,
    new_master: EncryptionKey | None = None,
) -> dict[str, Any]:
    """The stored header of an encrypted object re-bound to ``new_object_key`` and/or wrapped
    by ``new_master``; its chunks stay valid as they are (same data key, same digest)."""
    block = header["encryption"]
    if keyring is None:
        raise EncryptedObjectError(object_key, str(block.get("key_id", "?")))
    try:
        wrapped = base64.b64decode(block["wrapped_key"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise CorruptObjectError(object_key, "unreadable encryption header") from None
    digest = header_digest(header)
    data_key, opener = _unwrap(block, wrapped, object_key, digest, keyring)
    master = new_master or opener
    core = {k: v for k, v in header.items() if k != "encryption"}
    return _with_wrapped_key(core, new_object_key or object_key, master, data_key, digest)
