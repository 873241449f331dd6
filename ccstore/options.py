"""Store-wide options: what ``ccstore.open(url, **options)`` accepts besides backend options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from .chunking import DEFAULT_CHUNK_BYTES
from .codecs import Compression, resolve
from .encryption import Keyring, as_keyring
from .progress import ProgressOption

if TYPE_CHECKING:
    from .backends.base import Backend

__all__ = ["StoreOptions", "default_page_concurrency"]


def default_page_concurrency(defaults: Mapping[str, int], concurrency: int) -> int:
    """``page_concurrency`` when none is given: the backend's default (``defaults``, its
    ``transfer_defaults``), and no fewer than ``concurrency``."""
    return max(defaults.get("page_concurrency", 0), concurrency)


@dataclass(frozen=True)
class StoreOptions:
    """Options that apply to every operation of a store (per-call arguments override some).

    compression: codec for new objects: "zstd", "blosc", "lz4", "gzip", None, or a numcodecs
        Codec instance (or a list of codecs, applied in order).
    chunk_bytes: target size of automatically chosen chunks (raw bytes).
    read_only: refuse every write with ReadOnlyError.
    allow_pickle: allow reading pickled objects (and writing object-dtype arrays as pickles).
    concurrency: requests (and chunk encodings) in flight at once. Default: the backend's
        (8 for S3 and Google Drive, which hide latency with requests in flight; the number of
        CPUs, at most 8, for local and memory stores, which are bound by cores and memory).
    page_concurrency: page reads in flight at once: the 64 KiB pages a slice of an
        uncompressed array touches, read into the chunk's own buffer (no scratch memory, so
        more of them in flight cost little but connections). Default: the backend's, and at
        least ``concurrency`` (32 for S3, where each is a round trip; ``concurrency`` for
        the others: Google Drive limits request rates, local and memory stores are bound by
        cores).
    coalesce_gap: merge byte ranges separated by at most this many bytes into one request.
        Default: the backend's (1 MiB for network backends, where a request costs a round
        trip; 64 KiB for local and memory stores).
    max_request_bytes: largest merged read into scratch memory (compressed or encrypted
        chunks, slices); bounds that memory at concurrency x this. Default: the backend's
        (8 MiB for network backends, 4 MiB for local and memory stores). Whole uncompressed
        arrays, read straight into the result, go in ``concurrency`` larger requests (up to
        64 MiB each).
    tail_bytes: bytes read from an object's end to get header and index in one request.
    progress: True, False, None (auto: bar for large transfers on a terminal) or a callable
        ``fn(bytes_done, bytes_total)``. A batch (update, load_many, a dict) reports as one,
        in objects: ``fn(objects_done, objects_total)``, its bar shown by default on a
        terminal once the batch has run 2 s.
    encryption: master key(s) for client-side encryption: 32 bytes, an EncryptionKey, a list
        of them or a Keyring. New objects are encrypted with the first (current) key; every
        key decrypts. Stored as a Keyring.
    require_encryption: refuse to read objects stored unencrypted (UnencryptedObjectError),
        so that nobody with write access can slip in plaintext data in place of an encrypted
        object. Needs ``encryption``; off by default because a store may mix objects
        (``put(..., encrypt=False)``).
    """

    compression: Compression = None
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    read_only: bool = False
    allow_pickle: bool = False
    concurrency: int | None = None
    page_concurrency: int | None = None
    coalesce_gap: int | None = None
    max_request_bytes: int | None = None
    tail_bytes: int = 64 << 10
    progress: ProgressOption = None
    encryption: Keyring | None = None
    require_encryption: bool = False

    def __post_init__(self) -> None:
        resolve(self.compression)  # fail at open(), not at the first write
        object.__setattr__(self, "encryption", as_keyring(self.encryption))
        if self.require_encryption and self.encryption is None:
            raise ValueError("require_encryption=True needs encryption=<key or keyring>")
        for name in (
            "chunk_bytes", "concurrency", "page_concurrency", "max_request_bytes", "tail_bytes"
        ):  # fmt: skip
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.coalesce_gap is not None and self.coalesce_gap < 0:
            raise ValueError(f"coalesce_gap must be >= 0, got {self.coalesce_gap!r}")

    @classmethod
    def pop_from(cls, options: dict[str, Any]) -> StoreOptions:
        """Take the store options out of ``options``, leaving the rest."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: options.pop(k) for k in list(options) if k in names})

    def progress_for(self, progress: ProgressOption) -> ProgressOption:
        """A call's ``progress=`` argument, or the store's when the call gave none."""
        return self.progress if progress is None else progress

    def for_backend(self, backend: Backend) -> StoreOptions:
        """These options, with ``backend``'s transfer defaults where none was given."""
        defaults = backend.transfer_defaults
        unset = {
            name: value
            for name, value in defaults.items()
            if getattr(self, name) is None and name != "page_concurrency"
        }
        options = replace(self, **unset) if unset else self
        if options.page_concurrency is None:
            page = default_page_concurrency(defaults, options.concurrency)
            options = replace(options, page_concurrency=page)
        return options

    def updated(self, **changes: Any) -> StoreOptions:
        return replace(self, **changes)
