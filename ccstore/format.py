"""The ccstore object format (version 1): one object holds one or more chunked arrays.

Layout (all integers little-endian; specified byte by byte in docs/format.md)::

    magic (8 bytes) | chunk 0 | chunk 1 | ... | header (UTF-8 JSON) | index | footer (40 bytes)

The footer comes last so that one suffix read returns footer, header and index (and, for small
objects, everything). The index has one 20-byte entry per chunk (offset, length, CRC-32C of the
stored bytes), so any chunk is one byte range and is verified on every read. The writer streams
chunks in order and appends header, index and footer once the chunk sizes are known.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import crc32c
import numpy as np
from cryptography.exceptions import InvalidTag
from numcodecs.abc import Codec

from . import codecs as codec_chain
from .backends.base import Backend, RangeByteRequest, SuffixByteRequest
from .chunking import ChunkGrid, region_blocks
from .encryption import EncryptionKey, Keyring, ObjectCipher, open_header, seal_header
from .errors import CorruptObjectError, DecryptionError, EncryptedObjectError
from .pages import PAGE_BYTES, PAGE_ENTRY, ChunkChecksums
from .transfer import ThreadScratch, ordered_map

__all__ = [
    "FOOTER",
    "FORMAT_VERSION",
    "INDEX_ENTRY",
    "MAGIC",
    "ArrayLayout",
    "ArrayPart",
    "ObjectLayout",
    "checksum",
    "decode_chunk",
    "decode_chunk_into",
    "decrypt_chunk_into",
    "dtype_from_json",
    "dtype_to_json",
    "encode_tail",
    "read_layout",
    "unlock",
    "verify_chunk",
    "write_object",
]

MAGIC = b"\x93CCSTORE"
FORMAT_VERSION = 1
# data_end, header_len, index_len, crc32c(header + index), version, flags, magic
FOOTER = struct.Struct("<QQQIHH8s")
INDEX_ENTRY = np.dtype([("offset", "<u8"), ("nbytes", "<u8"), ("checksum", "<u4")])


def checksum(data: Any, value: int = 0) -> int:
    """CRC-32C (Castagnoli) of a buffer, continuing from ``value`` (the CRC of what came
    before): the checksum every chunk and header carries."""
    return crc32c.crc32c(data, value)


def feed_blocks(blocks: Sequence[np.ndarray], sums: ChunkChecksums) -> None:
    """Feed the bytes of 2-d blocks (see chunking.region_blocks), row by row in order, to
    ``sums``. Narrow rows are gathered into a small per-thread buffer first: copying them
    there costs less than a checksum call per row."""
    for block in blocks:
        if block.flags.c_contiguous:
            sums.update(block)
            continue
        step = max(_GATHER_BYTES // block.shape[1], 1)
        for first in range(0, len(block), step):
            rows = block[first : first + step]
            gathered = np.frombuffer(_GATHER.get(rows.nbytes), np.uint8).reshape(rows.shape)
            np.copyto(gathered, rows)
            sums.update(gathered)


_GATHER_BYTES = 256 << 10
_GATHER = ThreadScratch()


def dtype_to_json(dtype: np.dtype) -> Any:
    """A JSON value describing ``dtype`` exactly (numpy's .npy ``descr``, tuples as lists)."""
    return json.loads(json.dumps(np.lib.format.dtype_to_descr(dtype)))


def dtype_from_json(value: Any) -> np.dtype:
    """Inverse of dtype_to_json."""

    def fields(descr: Any) -> Any:
        if isinstance(descr, str):
            return descr
        out = []
        for entry in descr:
            name = tuple(entry[0]) if isinstance(entry[0], list) else entry[0]
            rest = [fields(entry[1]), tuple(entry[2])] if len(entry) > 2 else [fields(entry[1])]
            out.append((name, *rest))
        return out

    return np.lib.format.descr_to_dtype(fields(value))


@dataclass(frozen=True)
class ArrayPart:
    """One array to write into an object: its data, chunk shape, codec chain and order."""

    name: str
    array: np.ndarray
    chunks: tuple[int, ...]
    codecs: tuple[Codec, ...] = ()
    order: str = "C"

    @property
    def grid(self) -> ChunkGrid:
        return ChunkGrid(self.array.shape, self.chunks)

    def header(self, first_chunk: int) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.array.shape),
            "dtype": dtype_to_json(self.array.dtype),
            "order": self.order,
            "chunks": list(self.chunks),
            "codecs": [codec.get_config() for codec in self.codecs],
            "first_chunk": first_chunk,
        }

    def encode_chunk(self, index: int) -> memoryview:
        block = self.array[(*self.grid.region(index), Ellipsis)]  # 0-d stays an array
        block = np.asfortranarray(block) if self.order == "F" else np.ascontiguousarray(block)
        return codec_chain.encode(self.codecs, block)

    @property
    def has_pages(self) -> bool:
        """Whether its chunks get page checksums (uncoded chunks larger than a page)."""
        if self.codecs or not self.grid.nchunks:
            return False
        return int(np.prod(self.grid.chunk_shape(0))) * self.array.dtype.itemsize > PAGE_BYTES

    def raw_blocks(self, index: int) -> list[np.ndarray] | None:
        """The stored bytes of an uncoded chunk as strided views of the array (see
        chunking.region_blocks), or None when the array is not contiguous in its order."""
        flags = self.array.flags
        contiguous = flags.f_contiguous if self.order == "F" else flags.c_contiguous
        if self.codecs or not contiguous:
            return None
        return region_blocks(self.array, self.grid.region(index), self.order)


def write_object(
    backend: Backend,
    key: str,
    *,
    kind: str,
    parts: Sequence[ArrayPart],
    attrs: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    executor: Executor | None = None,
    window: int = 8,
    on_chunk: Any = None,
    encryption: EncryptionKey | None = None,
) -> None:
    """Encode ``parts`` chunk by chunk (``window`` at a time on ``executor``) and stream them
    into one object under ``key``. ``on_chunk(raw_nbytes)`` reports progress. With an
    ``encryption`` master key, chunks, attrs and metadata are sealed (see encryption.py)."""
    arrays, first = [], 0
    for part in parts:
        arrays.append(part.header(first))
        first += part.grid.nchunks
    header = {
        "format": "ccstore",
        "version": FORMAT_VERSION,
        "kind": kind,
        "checksum": "crc32c",
        "arrays": arrays,
        "attrs": attrs or {},
        "metadata": metadata or {},
    }
    cipher = None
    if encryption is not None:
        header, cipher = seal_header(header, key, encryption)
    # Page checksums let readers verify part of a chunk; coded or sealed chunks are only
    # ever read whole, so theirs would be dead weight.
    page_bytes = [PAGE_BYTES if cipher is None and part.has_pages else None for part in parts]
    tasks = list(_chunks_of(parts))

    def encode(task: tuple[int, int, int]) -> tuple[list[Any], ChunkChecksums, int]:
        number, p, index = task
        part = parts[p]
        raw = int(np.prod(part.grid.chunk_shape(index))) * part.array.dtype.itemsize
        sums = ChunkChecksums(page_bytes[p])
        blocks = part.raw_blocks(index) if cipher is None and backend.writes_blocks else None
        if blocks is not None:  # no copy of the chunk: the backend reads its rows in place
            feed_blocks(blocks, sums)
            return [memoryview(block) for block in blocks], sums, raw
        data = part.encode_chunk(index)
        if cipher is not None:
            data = cipher.seal(number, data)
        sums.update(data)
        return [data], sums, raw

    def stream() -> Iterator[Any]:
        yield MAGIC
        offset = len(MAGIC)
        index = np.empty(len(tasks), INDEX_ENTRY)
        tables: dict[int, list[int]] = {p: [] for p, size in enumerate(page_bytes) if size}
        results = ordered_map(executor, encode, tasks, window)
        for (number, p, _), (pieces, sums, raw) in zip(tasks, results):
            nbytes = sum(memoryview(piece).nbytes for piece in pieces)
            index[number] = (offset, nbytes, sums.crc)
            offset += nbytes
            yield from pieces
            if p in tables:
                tables[p].extend(sums.page_crcs())
            if on_chunk is not None:
                on_chunk(raw)
        for p, table in tables.items():
            header["arrays"][p]["pages"] = {"size": page_bytes[p], "offset": offset}
            data = np.array(table, PAGE_ENTRY).tobytes()
            offset += len(data)
            yield data
        yield encode_tail(_header_bytes(header), index, offset)

    backend.write(key, stream())


def _chunks_of(parts: Sequence[ArrayPart]) -> Iterator[tuple[int, int, int]]:
    """(number in the object, part number, index in the part) of every chunk, in order."""
    number = 0
    for p, part in enumerate(parts):
        for index in range(part.grid.nchunks):
            yield number, p, index
            number += 1


def _header_bytes(header: dict[str, Any]) -> bytes:
    return json.dumps(header, separators=(",", ":"), allow_nan=False).encode()


def encode_tail(header_bytes: bytes, index: np.ndarray, data_end: int) -> bytes:
    """Header, chunk index and footer: the bytes that follow an object's last chunk."""
    index_bytes = index.tobytes()
    meta_crc = crc32c.crc32c(index_bytes, crc32c.crc32c(header_bytes))
    footer = FOOTER.pack(
        data_end, len(header_bytes), len(index_bytes), meta_crc, FORMAT_VERSION, 0, MAGIC
    )
    return header_bytes + index_bytes + footer


@dataclass(frozen=True)
class ArrayLayout:
    """Where one stored array's chunks are and how to decode them."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    order: str
    chunks: tuple[int, ...]
    codec_configs: tuple[dict[str, Any], ...]
    first_chunk: int
    page_bytes: int | None = None  # set when the object has a page checksum table for it
    page_table: int | None = None  # where that table starts

    @property
    def grid(self) -> ChunkGrid:
        return ChunkGrid(self.shape, self.chunks)

    @cached_property
    def codecs(self) -> tuple[Codec, ...]:
        return codec_chain.from_configs(self.codec_configs)


@dataclass
class ObjectLayout:
    """Everything read from an object's tail: header, chunk index, and the tail bytes."""

    key: str
    size: int
    header: dict[str, Any]
    arrays: dict[str, ArrayLayout]
    index: np.ndarray
    tail: bytes = field(repr=False)
    tail_start: int
    data_end: int
    cipher: ObjectCipher | None = field(default=None, repr=False)
    # page checksums already read, by (array name, chunk index)
    page_crcs: dict[tuple[str, int], np.ndarray] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def kind(self) -> str:
        return self.header["kind"]

    @property
    def encrypted(self) -> bool:
        return "encryption" in self.header

    def tail_with_header(self, header: dict[str, Any]) -> bytes:
        """The tail (header, index, footer) that gives this object's chunks a new header."""
        return encode_tail(_header_bytes(header), self.index, self.data_end)

    def cached(self, start: int, end: int) -> memoryview | None:
        """Bytes [start, end) if the tail read already holds them."""
        if start >= self.tail_start and end <= self.size:
            return memoryview(self.tail)[start - self.tail_start : end - self.tail_start]
        return None

    def chunk_range(self, array: ArrayLayout, index: int) -> tuple[int, int]:
        entry = self.index[array.first_chunk + index]
        return int(entry["offset"]), int(entry["offset"] + entry["nbytes"])

    def has_pages(self, array: ArrayLayout) -> bool:
        """Whether chunks of ``array`` can be read in part: stored uncoded and unencrypted,
        with a page checksum table."""
        return array.page_bytes is not None and not array.codecs and not self.encrypted

    def page_table_ranges(
        self, array: ArrayLayout, indices: Iterable[int]
    ) -> list[tuple[int, int, int]]:
        """``(index, start, end)``: where the page checksums of each listed chunk of
        ``array`` are in the object."""
        bounds = array.page_table + _page_firsts(self.index, array) * PAGE_ENTRY.itemsize
        return [(i, int(bounds[i]), int(bounds[i + 1])) for i in indices]


def _page_firsts(index: np.ndarray, array: ArrayLayout) -> np.ndarray:
    """The first page table entry of each chunk of ``array``, and the table's length last."""
    nbytes = index["nbytes"][array.first_chunk : array.first_chunk + array.grid.nchunks]
    counts = -(-nbytes.astype(np.int64) // array.page_bytes)
    return np.concatenate(([0], np.cumsum(counts)))


def read_layout(backend: Backend, key: str, tail_bytes: int = 1 << 16) -> ObjectLayout:
    """Read an object's header and index: one suffix request for typical objects."""
    tail = backend.read(key, SuffixByteRequest(tail_bytes))
    if len(tail) < FOOTER.size + len(MAGIC):
        raise CorruptObjectError(key, f"only {len(tail)} bytes: not a ccstore object or truncated")
    data_end, header_len, index_len, meta_crc, version, flags, magic = FOOTER.unpack(
        tail[-FOOTER.size :]
    )
    if magic != MAGIC:
        raise CorruptObjectError(key, "no ccstore footer: not a ccstore object, or truncated")
    if version > FORMAT_VERSION:
        raise CorruptObjectError(
            key, f"format version {version} is newer than this ccstore reads; upgrade ccstore"
        )
    if version < 1 or flags != 0:
        raise CorruptObjectError(key, f"invalid footer (version {version}, flags {flags:#x})")
    size = data_end + header_len + index_len + FOOTER.size
    if data_end < len(MAGIC) or len(tail) > size or (len(tail) < tail_bytes and len(tail) != size):
        raise CorruptObjectError(key, "footer sizes do not match the object's size")
    tail_start = size - len(tail)
    meta_len = header_len + index_len
    if meta_len + FOOTER.size <= len(tail):
        meta = tail[-FOOTER.size - meta_len : -FOOTER.size]
    else:
        meta = backend.read(key, RangeByteRequest(data_end, data_end + meta_len))
        if len(meta) != meta_len:
            raise CorruptObjectError(key, "truncated header or chunk index")
    if crc32c.crc32c(meta) != meta_crc:
        raise CorruptObjectError(key, "header or chunk index checksum mismatch")
    if tail_start == 0 and tail[: len(MAGIC)] != MAGIC:
        raise CorruptObjectError(key, "bad magic bytes at the start of the object")
    header, arrays, index = _parse_meta(key, meta, header_len, data_end)
    return ObjectLayout(key, size, header, arrays, index, tail, tail_start, data_end)


def unlock(layout: ObjectLayout, keyring: Keyring | None) -> ObjectLayout:
    """Open an encrypted object's header (attrs, metadata, chunk cipher) with ``keyring``;
    unencrypted layouts are returned as they are."""
    if layout.encrypted and layout.cipher is None:
        layout.header, layout.cipher = open_header(layout.header, layout.key, keyring)
    return layout


def _parse_meta(key: str, meta: bytes, header_len: int, data_end: int):
    try:
        header = json.loads(meta[:header_len])
        arrays = {
            spec["name"]: ArrayLayout(
                name=spec["name"],
                shape=tuple(int(n) for n in spec["shape"]),
                dtype=dtype_from_json(spec["dtype"]),
                order=spec["order"],
                chunks=tuple(int(c) for c in spec["chunks"]),
                codec_configs=tuple(spec["codecs"]),
                first_chunk=int(spec["first_chunk"]),
                **_pages_of(spec),
            )
            for spec in header["arrays"]
        }
        header["kind"]
        # Both fields or neither: a header that lost one (a renamed or flipped field name)
        # must not pass for an unencrypted object, whose chunks would then be read unopened.
        if ("encryption" in header) != ("sealed" in header) or not isinstance(
            header.get("encryption", {}), dict
        ):
            raise ValueError("incomplete encryption fields")
    except Exception as e:  # numpy's dtype parser alone raises SyntaxError, IndexError, ...
        raise CorruptObjectError(key, f"unreadable header ({type(e).__name__}: {e})") from None
    index = np.frombuffer(meta, INDEX_ENTRY, offset=header_len)
    nchunks = sum(a.grid.nchunks for a in arrays.values())
    ends = index["offset"] + index["nbytes"]
    if len(index) != nchunks or (
        len(index) and (index["offset"].min() < len(MAGIC) or ends.max() > data_end)
    ):
        raise CorruptObjectError(key, "chunk index does not match the header")
    for a in arrays.values():
        if (
            a.order not in ("C", "F")
            or len(a.chunks) != len(a.shape)
            or min(a.chunks, default=1) < 1
        ):
            raise CorruptObjectError(key, f"invalid layout for array {a.name!r}")
        if a.page_bytes is not None and (
            a.page_bytes < 1
            or a.page_table < len(MAGIC)
            or a.page_table + _page_firsts(index, a)[-1] * PAGE_ENTRY.itemsize > data_end
        ):
            raise CorruptObjectError(key, f"invalid page table for array {a.name!r}")
    return header, arrays, index


def _pages_of(spec: dict[str, Any]) -> dict[str, int]:
    """ArrayLayout's page table fields from an array's header entry (none if it has none)."""
    if "pages" not in spec:
        return {}
    return {"page_bytes": int(spec["pages"]["size"]), "page_table": int(spec["pages"]["offset"])}


def verify_chunk(
    layout: ObjectLayout,
    array: ArrayLayout,
    index: int,
    data: memoryview,
    authenticate: bool = True,
) -> memoryview:
    """Check one stored chunk's checksum (and, if encrypted and ``authenticate``, its
    authentication tag); returns its codec-encoded bytes (decrypted into a per-thread buffer
    when encrypted and authenticated)."""
    _check_stored(layout, array, index, data)
    if not layout.encrypted or not authenticate:
        return data
    return _decrypt(layout, array, index, lambda cipher, n: cipher.open(n, data))


def decrypt_chunk_into(
    layout: ObjectLayout,
    array: ArrayLayout,
    index: int,
    data: memoryview,
    outputs: list[memoryview],
) -> None:
    """Verify an encrypted, uncompressed chunk and decrypt it straight into ``outputs`` (the
    consecutive runs of its plaintext in the destination)."""
    _check_stored(layout, array, index, data)
    _decrypt(layout, array, index, lambda cipher, n: cipher.open_into(n, data, outputs))


def _check_stored(layout: ObjectLayout, array: ArrayLayout, index: int, data: Any) -> None:
    entry = layout.index[array.first_chunk + index]
    if len(data) != entry["nbytes"] or checksum(data) != entry["checksum"]:
        raise CorruptObjectError(
            layout.key, f"checksum mismatch in chunk {index} of {array.name!r}"
        )


def _decrypt(layout: ObjectLayout, array: ArrayLayout, index: int, run: Any) -> Any:
    key_id = str(layout.header["encryption"].get("key_id", "?"))
    if layout.cipher is None:
        raise EncryptedObjectError(layout.key, key_id)
    try:
        return run(layout.cipher, array.first_chunk + index)
    except InvalidTag:
        raise DecryptionError(
            layout.key,
            key_id,
            f"chunk {index} of {array.name!r} fails authentication (tampered or misplaced)",
        ) from None


def decode_chunk(
    layout: ObjectLayout, array: ArrayLayout, index: int, data: memoryview
) -> np.ndarray:
    """Verify and decode one stored chunk into an array of the chunk's shape."""
    data = verify_chunk(layout, array, index, data)
    shape = array.grid.chunk_shape(index)
    try:
        raw = codec_chain.decode(array.codecs, data)
    except Exception as e:  # codecs raise many types on bad input
        raise CorruptObjectError(layout.key, f"chunk {index} does not decode: {e}") from None
    expected = int(np.prod(shape)) * array.dtype.itemsize
    if len(raw) != expected:
        raise CorruptObjectError(
            layout.key, f"chunk {index} decodes to {len(raw)} bytes, expected {expected}"
        )
    return np.frombuffer(raw, array.dtype).reshape(shape, order=array.order)


def decode_chunk_into(
    layout: ObjectLayout, array: ArrayLayout, index: int, data: memoryview, out: memoryview
) -> None:
    """Verify one stored chunk and decode it straight into ``out`` (its raw bytes' place in
    the destination), for chains where ``codecs.can_decode_into`` holds."""
    data = verify_chunk(layout, array, index, data)
    try:
        codec_chain.decode_into(array.codecs, data, out)
    except Exception as e:  # codecs raise many types on bad input
        raise CorruptObjectError(layout.key, f"chunk {index} does not decode: {e}") from None
