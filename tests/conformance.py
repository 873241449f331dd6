"""The backend conformance suite: the protocol every ccstore backend must honour.

Test modules subclass BackendConformance and provide a ``backend`` fixture yielding a fresh,
empty backend; the class runs the same checks against each.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from ccstore.backends.base import (
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
)
from ccstore.errors import InvalidKeyError, KeyExistsError, KeyNotFoundError

BAD_KEYS = ["", "/abs", "trailing/", "a//b", "./a", "a/../b", "..", "a\\b", "nul\x00", "x" * 1025]


class BackendConformance:
    def test_write_read_roundtrip(self, backend):
        backend.write("a/b/c", [b"hello ", b"world"])
        assert backend.read("a/b/c") == b"hello world"

    def test_write_accepts_generator_and_memoryviews(self, backend):
        parts = (memoryview(bytes([i]) * 1000) for i in range(10))
        backend.write("gen", parts)
        assert backend.read("gen") == b"".join(bytes([i]) * 1000 for i in range(10))

    def test_empty_object(self, backend):
        backend.write("empty", [])
        assert backend.read("empty") == b""
        assert backend.head("empty").size == 0

    def test_overwrite_replaces(self, backend):
        backend.write("k", [b"old value"])
        backend.write("k", [b"new"])
        assert backend.read("k") == b"new"

    def test_failed_write_keeps_old_value(self, backend):
        backend.write("k", [b"old value"])

        def failing():
            yield b"partial"
            raise RuntimeError("producer failed")

        with pytest.raises(RuntimeError, match="producer failed"):
            backend.write("k", failing())
        assert backend.read("k") == b"old value"
        assert list(backend.list("")) == ["k"]

    def test_failed_first_write_leaves_no_key(self, backend):
        def failing():
            yield b"partial"
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            backend.write("new/key", failing())
        assert not backend.exists("new/key")
        assert list(backend.list("")) == []

    @pytest.mark.parametrize(
        ("byte_range", "expected"),
        [
            (RangeByteRequest(2, 5), b"234"),
            (RangeByteRequest(0, 10), b"0123456789"),
            (RangeByteRequest(8, 100), b"89"),
            (RangeByteRequest(10, 20), b""),
            (RangeByteRequest(50, 60), b""),
            (OffsetByteRequest(7), b"789"),
            (OffsetByteRequest(0), b"0123456789"),
            (SuffixByteRequest(3), b"789"),
            (SuffixByteRequest(100), b"0123456789"),
        ],
    )
    def test_ranges(self, backend, byte_range, expected):
        backend.write("r", [b"0123456789"])
        assert backend.read("r", byte_range) == expected

    def test_read_into(self, backend):
        backend.write("r", [b"0123456789"])
        buf = bytearray(4)
        assert backend.read_into("r", 3, memoryview(buf)) == 4
        assert buf == b"3456"
        short = bytearray(6)
        assert backend.read_into("r", 7, memoryview(short)) == 3
        assert short[:3] == b"789"

    def test_read_scatter(self, backend):
        backend.write("r", [b"0123456789"])
        a, b, c = bytearray(3), bytearray(0), bytearray(4)
        assert backend.read_scatter("r", 2, [memoryview(a), memoryview(b), memoryview(c)]) == 7
        assert (a, c) == (b"234", b"5678")
        tail = [memoryview(bytearray(2)) for _ in range(3)]
        assert backend.read_scatter("r", 6, tail) == 4
        assert [bytes(t) for t in tail] == [b"67", b"89", b"\x00\x00"]
        many = [memoryview(bytearray(1)) for _ in range(2000)]  # more than IOV_MAX
        backend.write("m", [bytes(range(250)) * 8])
        assert backend.read_scatter("m", 0, many) == 2000
        assert b"".join(bytes(m) for m in many) == bytes(range(250)) * 8

    @pytest.mark.parametrize("width", [3, 70_000])  # narrow rows share reads; wide ones not
    def test_read_scatter_into_strided_blocks(self, backend, width):
        # The rows of a block inside a larger array, as readers pass a chunk's destination.
        data = bytes(np.random.default_rng(width).integers(0, 256, 4 * width + 5, np.uint8))
        backend.write("s", [data])
        whole = np.zeros((6, width + 2), np.uint8)
        block = whole[1:5, 1 : width + 1]
        head, tail = bytearray(2), bytearray(3)
        buffers = [memoryview(head), memoryview(block), memoryview(tail)]
        seen: list[tuple[int, bytes]] = []
        observe = lambda offset, piece: seen.append((offset, bytes(piece)))  # noqa: E731
        assert backend.read_scatter("s", 0, buffers, observe) == len(data)
        assert bytes(head) + block.tobytes() + bytes(tail) == data
        # the observer saw every byte once, in order, each piece at its offset
        assert b"".join(piece for _, piece in seen) == data
        assert [offset for offset, _ in seen] == [
            sum(len(piece) for _, piece in seen[:i]) for i in range(len(seen))
        ]
        assert not whole[0].any() and not whole[5].any()  # nothing outside the block
        assert not whole[:, 0].any() and not whole[:, -1].any()
        # an object that ends inside a row fills the block row by row up to there
        whole[:] = 0
        left = 2 * width - 1
        assert backend.read_scatter("s", len(data) - left, [memoryview(block)]) == left
        assert block.tobytes()[:left] == data[-left:]
        assert not any(block.tobytes()[left:])

    def test_missing_key_raises_keyerror(self, backend):
        with pytest.raises(KeyNotFoundError, match="'missing'"):
            backend.read("missing")
        with pytest.raises(KeyError):
            backend.head("missing")
        with pytest.raises(KeyNotFoundError):
            backend.delete("missing")
        with pytest.raises(KeyNotFoundError):
            backend.read_into("missing", 0, memoryview(bytearray(1)))
        assert not backend.exists("missing")

    def test_prefix_is_not_an_object(self, backend):
        backend.write("dir/file", [b"x"])
        assert not backend.exists("dir")
        with pytest.raises(KeyNotFoundError):
            backend.read("dir")

    def test_head(self, backend):
        backend.write("h", [b"x" * 1234])
        stat = backend.head("h")
        assert (stat.key, stat.size) == ("h", 1234)

    def test_delete(self, backend):
        backend.write("d/x", [b"1"])
        backend.write("d/y", [b"2"])
        backend.delete("d/x")
        assert list(backend.list("")) == ["d/y"]
        backend.delete("d/y")
        assert list(backend.list("")) == []
        assert backend.list_dir("")[0] == []  # SeaweedFS may still list "d/" as a prefix
        assert not backend.has_prefix("d/")
        assert not backend.has_prefix("")

    def test_has_prefix(self, backend):
        backend.write("p/q/r", [b"v"])
        assert backend.has_prefix("p/") and backend.has_prefix("p/q/") and backend.has_prefix("p")
        assert not backend.has_prefix("q/") and not backend.has_prefix("p/r")

    def test_delete_many_ignores_missing(self, backend):
        for k in ("a", "b", "c/d"):
            backend.write(k, [b"v"])
        backend.delete_many(["a", "c/d", "nope"])
        assert list(backend.list("")) == ["b"]

    def test_list_recursive_sorted_by_prefix(self, backend):
        keys = ["b", "a/x", "a/y/z", "a-b", "ab", "a/y/a", "c/d/e/f"]
        for k in keys:
            backend.write(k, [k.encode()])
        assert list(backend.list("")) == sorted(keys, key=str.encode)
        assert list(backend.list("a/")) == ["a/x", "a/y/a", "a/y/z"]
        assert list(backend.list("a")) == sorted(
            ["a/x", "a/y/z", "a-b", "ab", "a/y/a"], key=str.encode
        )
        assert list(backend.list("a/y/")) == ["a/y/a", "a/y/z"]
        assert list(backend.list("nothing/")) == []

    def test_list_dir(self, backend):
        for k in ["top", "d1/a", "d1/b/c", "d2/x", "t2"]:
            backend.write(k, [b"v"])
        assert backend.list_dir("") == (["t2", "top"], ["d1/", "d2/"])
        assert backend.list_dir("d1/") == (["d1/a"], ["d1/b/"])
        assert backend.list_dir("t") == (["t2", "top"], [])
        assert backend.list_dir("missing/") == ([], [])

    def test_unicode_keys(self, backend):
        key = "données/été/ß-✓"
        backend.write(key, [b"u"])
        assert backend.read(key) == b"u"
        assert list(backend.list("données/")) == [key]

    def test_dot_files_are_keys(self, backend):
        backend.write("g/.zattrs", [b"{}"])
        assert list(backend.list("g/")) == ["g/.zattrs"]

    @pytest.mark.parametrize("bad", BAD_KEYS)
    def test_invalid_keys_rejected(self, backend, bad):
        with pytest.raises(InvalidKeyError, match="invalid key"):
            backend.write(bad, [b"x"])
        with pytest.raises(InvalidKeyError):
            backend.read(bad)
        assert list(backend.list("")) == []

    def test_copy_and_move(self, backend):
        backend.write("src/a", [b"payload"])
        backend.copy("src/a", "dst/b")
        assert backend.read("dst/b") == b"payload"
        assert backend.read("src/a") == b"payload"
        backend.move("src/a", "moved/c")
        assert backend.read("moved/c") == b"payload"
        assert not backend.exists("src/a")
        with pytest.raises(KeyNotFoundError):
            backend.copy("nope", "x")

    @pytest.mark.parametrize("keep", [0, 5, 6 << 20])
    def test_copy_with_tail(self, backend, keep):
        body = np.random.default_rng(keep).integers(0, 256, keep + 100, dtype=np.uint8).tobytes()
        backend.write("src/a", [body])
        backend.copy_with_tail("src/a", "dst/b", keep, b"new tail")
        assert backend.read("dst/b") == body[:keep] + b"new tail"
        assert backend.read("src/a") == body
        backend.copy_with_tail("src/a", "src/a", keep, b"in place")  # src may be dst
        assert backend.read("src/a") == body[:keep] + b"in place"
        with pytest.raises(KeyNotFoundError):
            backend.copy_with_tail("nope", "x", keep, b"t")
        assert not backend.exists("x")

    def test_conditional_write(self, backend):
        if not backend.supports_conditional_write:
            pytest.skip(f"{type(backend).__name__} has no conditional write")
        backend.write("c", [b"first"], if_absent=True)
        with pytest.raises(KeyExistsError, match="'c'"):
            backend.write("c", [b"second"], if_absent=True)
        assert backend.read("c") == b"first"

    def test_stats_count_requests_and_bytes(self, backend):
        before = backend.stats.snapshot()
        backend.write("s", [b"x" * 100])
        backend.read("s", RangeByteRequest(10, 30))
        cost = backend.stats.snapshot() - before
        assert cost.writes >= 1
        assert cost.reads == 1
        assert cost.bytes_written == 100
        assert cost.bytes_read == 20

    def test_pickle_roundtrip(self, backend):
        backend.write("p", [b"pickled"])
        clone = pickle.loads(pickle.dumps(backend))
        assert clone.url == backend.url
        assert clone.read("p") == b"pickled"
