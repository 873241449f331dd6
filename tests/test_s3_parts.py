"""Upload parts cut from write parts without copies, and the bodies botocore reads them by."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccstore.backends import s3_parts
from ccstore.backends.s3_parts import PartBody, cut_parts

_BASE = np.arange(40 * 30, dtype=np.uint8).reshape(40, 30)


@st.composite
def write_parts(draw):
    """Parts as write_object hands them over: bytes, 1-d buffers of other formats, and 2-d
    blocks of contiguous rows inside larger arrays (strided, contiguous, non-byte dtypes)."""
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["bytes", "bytearray", "int32", "block", "wide block"]))
        if kind in ("bytes", "bytearray"):
            data = draw(st.binary(max_size=70))
            parts.append(data if kind == "bytes" else bytearray(data))
        elif kind == "int32":
            parts.append(np.arange(draw(st.integers(0, 20)), dtype="<i4"))
        else:
            top = draw(st.integers(0, 39))
            rows = draw(st.integers(0, 40 - top))
            left = 0 if kind == "wide block" else draw(st.integers(0, 29))
            width = 30 - left if kind == "wide block" else draw(st.integers(1, 30 - left))
            block = _BASE[top : top + rows, left : left + width]
            parts.append(memoryview(block.view("<u2") if width % 2 == 0 and not left else block))
    return parts


def _bytes_of(part) -> bytes:
    view = memoryview(part)
    return np.asarray(view).tobytes() if view.ndim == 2 else view.tobytes()


def _concat(pieces) -> bytes:
    return b"".join(_bytes_of(piece) for piece in pieces)


@given(parts=write_parts(), part_size=st.integers(1, 100))
def test_parts_are_exact_sizes_in_order(parts, part_size):
    expected = b"".join(_bytes_of(part) for part in parts)
    cut = list(cut_parts(iter(parts), part_size))
    assert b"".join(_concat(pieces) for pieces in cut) == expected
    sizes = [len(_concat(pieces)) for pieces in cut]
    assert all(size == part_size for size in sizes[:-1])
    assert not cut or 0 < sizes[-1] <= part_size
    assert len(cut) == -(-len(expected) // part_size)


def test_parts_are_views_not_copies():
    source = np.zeros((64, 100), np.uint8)
    flat = bytearray(50)
    cut = list(cut_parts([flat, memoryview(source[:, 10:60]), memoryview(source)], 333))
    flat[:] = b"\x07" * 50
    source[:] = 9
    assert _concat(p for pieces in cut for p in pieces) == b"\x07" * 50 + b"\x09" * 9600


@settings(max_examples=300)
@given(
    parts=write_parts(),
    reads=st.lists(st.one_of(st.integers(-1, 80), st.just("seek")), max_size=30),
    gather=st.sampled_from([(4, 16), (8, 32), (1, 8), (64, 64)]),
)
def test_body_reads_the_pieces_in_order(parts, reads, gather):
    # small gather sizes, so short runs, long runs and rows of blocks all meet their edges
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(s3_parts, "GATHER_BELOW", gather[0])
        patch.setattr(s3_parts, "GATHER_BYTES", gather[1])
        pieces = [piece for part in cut_parts(parts, 10**6) for piece in part]
        expected = _concat(pieces)
        body = PartBody(pieces)
        assert len(body) == len(expected)
        position = 0
        for size in [*reads, -1]:
            if size == "seek":
                position = len(expected) // 3
                assert body.seek(position) == position
                continue
            got = bytes(body.read(size))
            assert got == expected[position : position + len(got)]
            if size >= 0:
                assert len(got) <= max(size, gather[1])
            if position < len(expected):
                assert got  # never an empty read before the end
            position += len(got)
            assert body.tell() == position
        assert position == len(expected)
        assert body.read(10) == b""
        body.seek(0)
        assert bytes(body.read()) == expected


def test_long_runs_are_read_uncopied_and_short_ones_gathered():
    big = bytearray(3 << 20)
    rows = np.zeros((2000, 4096), np.uint8)  # 4 KiB rows of a strided block: gathered
    body = PartBody([memoryview(big), rows[:, :1024]])
    first = body.read(16384)
    assert len(first) == s3_parts.GATHER_BYTES  # a megabyte of the long run, not 16 KiB
    big[0] = 1
    assert first[0] == 1  # a view of the caller's buffer
    body.seek(3 << 20)
    gathered = body.read(16384)
    assert len(gathered) == s3_parts.GATHER_BYTES  # 1024 rows of 1 KiB copied in one go
    rows[0, 0] = 5
    assert gathered[0] == 0  # a copy, made by the read


def test_body_rejects_seeks_outside_it():
    body = PartBody([memoryview(b"abcdef")])
    assert body.seek(-2, 2) == 4 and bytes(body.read(1)) == b"ef"  # reads may return more
    assert body.seek(-3, 1) == 3
    with pytest.raises(ValueError, match="seek to 7 outside a body of 6 bytes"):
        body.seek(7)
