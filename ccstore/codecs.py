"""Compression: names and numcodecs codecs, and the per-chunk encode/decode pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numcodecs
import numpy as np
from numcodecs.abc import Codec

__all__ = ["Compression", "compression_name", "decode", "encode", "from_configs", "resolve"]

Compression = str | Codec | Sequence[Codec] | None

# Defaults chosen for speed on scientific arrays: fast levels, byte shuffle for blosc.
_NAMED: dict[str, dict[str, Any]] = {
    "zstd": {"id": "zstd", "level": 1},
    "blosc": {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 1},
    "lz4": {"id": "lz4", "acceleration": 1},
    "gzip": {"id": "gzip", "level": 1},
    "zlib": {"id": "zlib", "level": 1},
    "bz2": {"id": "bz2", "level": 1},
    "lzma": {"id": "lzma"},
}


def resolve(compression: Compression) -> tuple[Codec, ...]:
    """Turn a compression setting (name, codec, list of codecs or None) into a codec chain."""
    if compression is None or compression == "none":
        return ()
    if isinstance(compression, str):
        try:
            config = _NAMED[compression.lower()]
        except KeyError:
            names = ", ".join(sorted(_NAMED))
            raise ValueError(
                f"unknown compression {compression!r}; use one of {names}, None, "
                "or a numcodecs Codec instance"
            ) from None
        return (numcodecs.get_codec(dict(config)),)
    if isinstance(compression, Codec):
        return (compression,)
    if isinstance(compression, Sequence) and all(isinstance(c, Codec) for c in compression):
        return tuple(compression)
    raise TypeError(f"compression must be a name, a numcodecs Codec or None, not {compression!r}")


def from_configs(configs: Sequence[dict[str, Any]]) -> tuple[Codec, ...]:
    """Rebuild a codec chain from the configs stored in an object header."""
    return tuple(numcodecs.get_codec(dict(config)) for config in configs)


def compression_name(configs: Sequence[dict[str, Any]]) -> str | None:
    """A short human name for a stored codec chain (None when uncompressed)."""
    return "+".join(config["id"] for config in configs) or None


def encode(codecs: Sequence[Codec], chunk: np.ndarray) -> memoryview:
    """Encode one contiguous chunk through the chain; returns the stored bytes."""
    data: Any = _codec_view(chunk)
    for codec in codecs:
        data = codec.encode(data)
    return _bytes_view(data)


def decode(codecs: Sequence[Codec], data: memoryview) -> memoryview:
    """Decode stored bytes back to the raw chunk bytes."""
    for codec in reversed(codecs):
        data = codec.decode(data)
    return _bytes_view(data)


def _codec_view(chunk: np.ndarray) -> np.ndarray:
    """A flat view codecs accept, keeping the item size where shuffling filters can use it."""
    flat = chunk.reshape(-1, order="A")
    if flat.dtype.kind in "biufc" and not flat.dtype.fields:
        return flat if flat.dtype.isnative else flat.view(flat.dtype.newbyteorder("="))
    if flat.dtype.kind in "mM":
        return flat.view(f"u{flat.dtype.itemsize}")
    return flat.view(np.uint8)


def _bytes_view(data: Any) -> memoryview:
    """A flat byte view of what a codec returned (bytes-like or an ndarray)."""
    if isinstance(data, np.ndarray):
        return memoryview(np.ascontiguousarray(data).reshape(-1).view(np.uint8))
    return memoryview(data).cast("B")
