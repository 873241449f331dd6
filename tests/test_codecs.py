"""The codec pipeline: named presets, and decoding straight into a caller's buffer."""

from __future__ import annotations

import numcodecs
import numpy as np
import pytest
from conftest import traced_peak
from hypothesis import given, settings
from hypothesis import strategies as st

import ccstore
from ccstore.codecs import _zstd_content_size, can_decode_into, decode, decode_into, encode
from ccstore.format import read_layout

DIRECT = [
    numcodecs.Zstd(1),
    numcodecs.Zstd(3, checksum=True),
    numcodecs.Blosc("zstd", 1, numcodecs.Blosc.BITSHUFFLE),
    numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE),
    numcodecs.LZ4(),
]


def _chunk(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(3.0, n).astype("<f4")  # compressible, not trivially so


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300_000), level=st.integers(-3, 9), checksum=st.booleans())
def test_zstd_content_size_matches_what_the_frame_decodes_to(n, level, checksum):
    codec = numcodecs.Zstd(level, checksum=checksum)
    frame = memoryview(codec.encode(np.zeros(n, np.uint8) + 7)).cast("B")
    assert _zstd_content_size(frame) == n == len(codec.decode(frame))


def test_zstd_content_size_rejects_other_bytes():
    with pytest.raises(ValueError, match="not a zstd frame"):
        _zstd_content_size(memoryview(b"\x00" * 16))


@pytest.mark.parametrize("codec", DIRECT, ids=repr)
@pytest.mark.parametrize("n", [1, 1000, 1 << 18])  # numcodecs cannot decode empty frames
def test_decode_into_writes_exactly_the_decoded_bytes(codec, n):
    chunk = _chunk(n)
    data = encode((codec,), chunk)
    out = bytearray(b"\xee" * chunk.nbytes)
    decode_into((codec,), data, memoryview(out))
    assert bytes(out) == chunk.tobytes() == bytes(decode((codec,), data))


def test_decode_into_through_a_chain_decodes_the_outer_codecs_first():
    chain = (numcodecs.Zstd(1), numcodecs.Zlib(1))  # encode: zstd, then zlib
    chunk = _chunk(5000)
    out = bytearray(chunk.nbytes)
    decode_into(chain, encode(chain, chunk), memoryview(out))
    assert bytes(out) == chunk.tobytes()


@pytest.mark.parametrize("codec", DIRECT, ids=repr)
@pytest.mark.parametrize("delta", [-4, 4])
def test_decode_into_a_buffer_of_another_size_raises(codec, delta):
    chunk = _chunk(1000)
    data = encode((codec,), chunk)
    with pytest.raises(ValueError, match=f"decodes to 4000 bytes, expected {4000 + delta}"):
        decode_into((codec,), data, memoryview(bytearray(4000 + delta)))


def test_can_decode_into_only_when_the_last_decoding_step_can():
    assert all(can_decode_into((codec,)) for codec in DIRECT)
    assert can_decode_into((numcodecs.Zstd(1), numcodecs.Zlib(1)))
    assert not can_decode_into(())
    assert not can_decode_into((numcodecs.Zlib(1),))
    assert not can_decode_into((numcodecs.Delta("<f4"), numcodecs.Zstd(1)))


def _stored_shuffle(store, key):
    layout = read_layout(store.backend, store.prefix + key)
    return {name: a.codec_configs[0]["shuffle"] for name, a in layout.arrays.items()}


def test_blosc_preset_bit_shuffles_numbers_and_leaves_bytes_alone():
    store = ccstore.open("memory://blosc-preset", compression="blosc")
    numbers = _chunk(100_000)
    store["numbers"] = numbers
    store["text"] = "a line of text\n" * 1000
    store["records"] = np.zeros(10, dtype=[("a", "<i4"), ("b", "<f8")])
    store["flags"] = np.ones(10, dtype=bool)
    assert _stored_shuffle(store, "numbers") == {"data": numcodecs.Blosc.BITSHUFFLE}
    assert set(_stored_shuffle(store, "text").values()) == {numcodecs.Blosc.NOSHUFFLE}
    assert _stored_shuffle(store, "records") == {"data": numcodecs.Blosc.NOSHUFFLE}
    assert _stored_shuffle(store, "flags") == {"data": numcodecs.Blosc.NOSHUFFLE}
    assert store.load("numbers").tobytes() == numbers.tobytes()
    assert store["text"] == "a line of text\n" * 1000
    # bit planes of numbers compress better than the plain zstd preset
    store.put("plain", numbers, compression="zstd")
    assert store.info("numbers").size < 0.9 * store.info("plain").size


@pytest.mark.parametrize("compression", ["zstd", "blosc", "lz4"])
def test_whole_reads_decode_chunks_straight_into_the_result(compression):
    # A decoded chunk held anywhere but its place in the result would show in the peak.
    store = ccstore.open("memory://into-place", compression=compression, concurrency=2)
    a = np.zeros((64, 65536), "<f4")  # 16 MiB in 16 chunks of 1 MiB, compressing to little
    a[:, ::1000] = 1.0
    store.put("a", a, chunks=(4, 65536))
    store.load("a")  # warm the per-thread scratch buffers
    got, peak = traced_peak(lambda: store.load("a"))
    assert got.tobytes() == a.tobytes()
    assert peak < a.nbytes + (1 << 20) // 2
