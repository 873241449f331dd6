"""Store behaviour on every backend: kinds, mapping semantics, listing, views, copies, errors."""

from __future__ import annotations

import datetime
import pickle
import sys
import threading
import time
from collections import OrderedDict
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import fix_checksums, stored_index

import ccstore
import ccstore.backends.memory
import ccstore.progress
from ccstore import (
    CorruptObjectError,
    InvalidKeyError,
    KeyNotFoundError,
    LazyArray,
    PickleNotAllowedError,
    ReadOnlyError,
    UnsupportedValueError,
)


def assert_same_array(got, want):
    assert type(got) is np.ndarray
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    assert got.tobytes(order="A") == np.asarray(want).tobytes(order="A")
    if want.ndim > 1 and want.flags.f_contiguous and not want.flags.c_contiguous:
        assert got.flags.f_contiguous


class TestArrays:
    def test_lazy_array_metadata_without_data(self, store):
        a = np.arange(24, dtype="<i8").reshape(2, 3, 4)
        store.put("a", a, chunks=(1, 2, 3))
        before = store.stats.snapshot()
        x = store["a"]
        assert isinstance(x, LazyArray)
        assert (x.shape, x.dtype, x.ndim, x.nbytes, x.chunks, x.size, len(x)) == (
            (2, 3, 4),
            np.dtype("<i8"),
            3,
            192,
            (1, 2, 3),
            24,
            2,
        )
        assert (store.stats.snapshot() - before).requests == 1
        assert_same_array(np.asarray(x), a)
        assert_same_array(x.read(), a)
        assert_same_array(store.load("a"), a)

    def test_fortran_order_roundtrip(self, store):
        a = np.asfortranarray(np.arange(60, dtype="f8").reshape(5, 12))
        store["f"] = a
        assert store["f"].order == "F"
        assert_same_array(store.load("f"), a)

    def test_non_contiguous_view(self, store):
        base = np.arange(1000, dtype="i4").reshape(20, 50)
        view = base[::3, 5:40:2]
        store["v"] = view
        got = store.load("v")
        assert np.array_equal(got, view)
        assert got.dtype == view.dtype

    @pytest.mark.parametrize("shape", [(), (0,), (3, 0), (0, 4, 5)])
    def test_zero_d_and_empty(self, store, shape):
        a = np.full(shape, 7, dtype="u2")
        store["e"] = a
        assert_same_array(store.load("e"), a)
        assert store["e"].shape == shape

    def test_numpy_scalar_comes_back_as_scalar(self, store):
        store["s"] = np.float32(1.5)
        got = store["s"]
        assert type(got) is np.float32 and got == np.float32(1.5)
        store["d"] = np.datetime64("2024-01-02T03:04", "m")
        assert store.load("d") == np.datetime64("2024-01-02T03:04", "m")

    def test_structured_dtype_keeps_field_names(self, store):
        dt = np.dtype(
            [("x", "<f4"), ("name", "S5"), ("nested", [("a", "<i2"), ("b", "<u1", (2,))])]
        )
        a = np.zeros(4, dt)
        a["x"] = [1, 2, 3, 4]
        a["name"] = [b"ab", b"cd", b"ef", b"gh"]
        a["nested"]["b"] = [[1, 2], [3, 4], [5, 6], [7, 8]]
        store["rec"] = a
        got = store.load("rec")
        assert got.dtype == dt and got.dtype.names == ("x", "name", "nested")
        assert got.tobytes() == a.tobytes()

    def test_padded_structured_dtype(self, store):
        dt = np.dtype(
            {"names": ["a", "b"], "formats": ["<i4", "<f8"], "offsets": [0, 8], "itemsize": 24}
        )
        a = np.zeros(3, dt)
        a["a"], a["b"] = [1, 2, 3], [0.5, 1.5, 2.5]
        store["p"] = a
        got = store.load("p")
        assert got.dtype == dt and got.dtype.itemsize == 24
        assert np.array_equal(got["a"], a["a"]) and np.array_equal(got["b"], a["b"])

    def test_object_arrays_need_pickle(self, store):
        a = np.array([{"a": 1}, None], dtype=object)
        with pytest.raises(PickleNotAllowedError, match="object-dtype array"):
            store["o"] = a
        assert "o" not in store
        allowed = ccstore.Store(
            store.backend, store.prefix, store.options.updated(allow_pickle=True)
        )
        allowed["o"] = a
        got = allowed["o"]
        assert got.dtype == object and list(got) == [{"a": 1}, None]

    def test_subclasses_are_pickled_to_keep_their_state(self, store):
        masked = np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])
        store["m"] = masked
        assert store.info("m").kind == "pickle"
        got = store.load("m", allow_pickle=True)
        assert isinstance(got, np.ma.MaskedArray) and list(got.mask) == [False, True, False]

    def test_compression_per_store_and_per_write(self, store):
        a = np.zeros((300, 300), "f8")
        store.put("raw", a)
        store.put("z", a, compression="zstd")
        assert store.info("raw").compression is None
        assert store.info("z").compression == "zstd"
        assert store.info("z").size < store.info("raw").size / 20
        assert_same_array(store.load("z"), a)
        zs = ccstore.Store(store.backend, store.prefix, store.options.updated(compression="blosc"))
        zs["b"] = a
        assert store.info("b").compression == "blosc"

    def test_codec_instance(self, store):
        import numcodecs

        a = np.arange(10000, dtype="i8")
        store.put("d", a, compression=[numcodecs.Delta("i8"), numcodecs.Zstd(level=5)])
        assert store.info("d").compression == "delta+zstd"
        assert_same_array(store.load("d"), a)

    def test_unknown_compression(self, store):
        with pytest.raises(ValueError, match="unknown compression 'snappyish'"):
            store.put("x", np.zeros(3), compression="snappyish")
        with pytest.raises(ValueError, match="unknown compression"):
            ccstore.open("memory://", compression="nope")

    def test_chunks_option(self, store):
        store.put("c", np.zeros((10, 10)), chunks=3)
        info = store.info("c")
        assert info.chunks == (3, 3) and info.nchunks == 16
        with pytest.raises(ValueError, match="chunks"):
            store.put("c", np.zeros((10, 10)), chunks=(3,))
        with pytest.raises(ValueError, match="applies to arrays"):
            store.put("t", "text", chunks=3)

    def test_metadata(self, store):
        store.put("m", np.arange(3), metadata={"units": "mm", "tr": 2.0})
        assert store.info("m").metadata == {"units": "mm", "tr": 2.0}
        with pytest.raises(UnsupportedValueError, match="JSON-able"):
            store.put("m2", np.arange(3), metadata={"bad": object()})


SPARSE_FORMATS = ["csr", "csc", "coo", "bsr", "dia", "lil", "dok"]


class TestOtherKinds:
    @pytest.mark.parametrize("fmt", SPARSE_FORMATS)
    @pytest.mark.parametrize("container", ["matrix", "array"])
    def test_sparse_roundtrip_same_class(self, store, fmt, container):
        dense = sp.random(40, 30, density=0.1, format="coo", random_state=1, dtype="f4")
        cls = getattr(sp, f"{fmt}_{container}")
        m = cls(dense)
        store[f"s/{fmt}"] = m
        got = store[f"s/{fmt}"]
        assert type(got) is cls
        assert got.shape == m.shape and got.dtype == m.dtype
        assert (got != m).nnz == 0
        info = store.info(f"s/{fmt}")
        assert info.kind == "sparse" and info.shape == (40, 30)

    def test_csr_structure_is_exact(self, store):
        m = sp.csr_array(
            (np.array([3.0, 1.0]), np.array([2, 0]), np.array([0, 2, 2])), shape=(2, 3)
        )
        store["u"] = m  # unsorted indices must come back as stored
        got = store["u"]
        assert got.indices.tolist() == [2, 0] and got.indptr.tolist() == [0, 2, 2]
        assert got.indices.dtype == m.indices.dtype

    @pytest.mark.parametrize(
        "value",
        [
            b"",
            b"\x00\xffbinary",
            "",
            "text with ünïcödé \u2603",
            {"a": [1, 2.5, None, True]},
            [1, "two", {"3": 4.0}],
            17,
            -2.5,
            True,
            None,
            {"nested": {"deep": []}},
            2**80,
        ],
        ids=repr,
    )
    def test_plain_values_roundtrip_exactly(self, store, value):
        store["v"] = value
        got = store["v"]
        assert got == value and type(got) is type(value)
        assert store.load("v") == value

    def test_json_float_specials(self, store):
        store["f"] = [float("inf"), -0.0]
        got = store["f"]
        assert got[0] == float("inf") and str(got[1]) == "-0.0"

    def test_kinds_reported(self, store):
        values = {
            "a": np.zeros(2),
            "s": sp.eye(3, format="csr"),
            "j": {"x": 1},
            "t": "hi",
            "b": b"by",
            "p": Fraction(1, 3),
        }
        for k, v in values.items():
            store[k] = v
        assert {k: store.info(k).kind for k in values} == {
            "a": "array",
            "s": "sparse",
            "j": "json",
            "t": "text",
            "b": "bytes",
            "p": "pickle",
        }

    @pytest.mark.parametrize(
        "value",
        [
            Fraction(1, 3),
            (1, 2),
            {1: "int key"},
            {"set": {1, 2}},
            datetime.date(2024, 1, 2),
            OrderedDict(a=1),
            bytearray(b"ba"),
        ],
        ids=repr,
    )
    def test_everything_else_is_pickled_and_needs_opt_in(self, store, value):
        store["p"] = value
        assert store.info("p").kind == "pickle"
        with pytest.raises(PickleNotAllowedError, match="allow_pickle=True"):
            store["p"]
        with pytest.raises(PickleNotAllowedError):
            store.load("p")
        got = store.load("p", allow_pickle=True)
        assert got == value and type(got) is type(value)

    def test_unpicklable_value_is_a_clear_error(self, store):
        with pytest.raises(UnsupportedValueError, match="pickling it failed"):
            store["x"] = lambda: 1
        assert "x" not in store


class TestTrees:
    def test_dict_with_arrays_is_one_object_per_leaf(self, store):
        tree = {
            "bold": np.arange(6.0).reshape(2, 3),
            "info": {"tr": 2.0, "runs": [1, 2]},
            "mask": sp.eye(2, format="csr"),
            "deep": {"x": {"y": np.int16(3)}},
            "empty": {},
        }
        store["subj"] = tree
        assert sorted(store) == [
            "subj/bold",
            "subj/deep/x/y",
            "subj/empty",
            "subj/info/runs",
            "subj/info/tr",
            "subj/mask",
        ]
        sub = store["subj"]
        assert isinstance(sub, ccstore.Store) and sub == store.sub("subj")
        assert_same_array(sub["bold"].read(), tree["bold"])
        loaded = store.load("subj")
        assert loaded["info"] == {"tr": 2.0, "runs": [1, 2]} and loaded["empty"] == {}
        assert loaded["deep"]["x"]["y"] == np.int16(3)
        assert_same_array(loaded["bold"], tree["bold"])
        assert "subj" in store

    def test_rewriting_a_tree_drops_old_leaves(self, store):
        store["t"] = {"a": np.zeros(1), "b": np.ones(1)}
        store["t"] = {"a": np.ones(1), "c": {"d": np.zeros(2)}}
        assert sorted(store.sub("t")) == ["a", "c/d"]

    def test_bad_tree_keys(self, store):
        with pytest.raises(InvalidKeyError, match="without '/'"):
            store["t"] = {"a/b": np.zeros(1)}
        with pytest.raises(InvalidKeyError):
            store["t"] = {"": np.zeros(1)}

    def test_delete_prefix_removes_everything_below(self, store):
        store["t"] = {"a": np.zeros(1), "b": {"c": np.zeros(1)}}
        store["keep"] = 1
        del store["t"]
        assert list(store) == ["keep"]


class TestMapping:
    def test_mapping_semantics(self, store):
        assert len(store) == 0 and list(store) == []
        store["x"] = 1
        store["y/z"] = "two"
        assert len(store) == 2 and sorted(store) == ["x", "y/z"]
        assert "x" in store and "y/z" in store and "y" in store and "nope" not in store
        assert store.get("nope", 5) == 5
        with pytest.raises(KeyError):
            store["nope"]
        del store["x"]
        assert "x" not in store
        with pytest.raises(KeyNotFoundError, match="'x'"):
            del store["x"]
        store.update({"a": 1, "b": 2})
        assert dict(store.items()) == {"a": 1, "b": 2, "y/z": "two"}
        assert store.pop("a") == 1 and "a" not in store

    def test_missing_key_message_names_key_and_store(self, store):
        with pytest.raises(KeyNotFoundError) as info:
            store["absent/key"]
        assert "'absent/key'" in str(info.value) and store.url in str(info.value)
        assert info.value.key == "absent/key"

    def test_keys_outside_prefix_are_invisible(self, store):
        store.backend.write("elsewhere", [b"x"])
        store.backend.write("root/prefixed-sibling", [b"x"])
        store["mine"] = 1
        assert list(store) == ["mine"]

    def test_ls_one_level(self, store):
        for k in ["a", "d/b", "d/e/f", "g/h"]:
            store[k] = 0
        assert store.ls() == ["a", "d/", "g/"]
        assert store.ls("d") == ["d/b", "d/e/"]
        assert store.ls("d/") == ["d/b", "d/e/"]
        assert store.ls("zzz") == []

    def test_glob(self, store):
        for k in ["s01/bold", "s01/mask", "s02/bold", "s02/run1/bold", "notes.txt", "a?b"]:
            store[k] = 0
        assert store.glob("*/bold") == ["s01/bold", "s02/bold"]
        assert store.glob("s0[1]/*") == ["s01/bold", "s01/mask"]
        assert store.glob("**/bold") == ["s01/bold", "s02/bold", "s02/run1/bold"]
        assert store.glob("s02/**") == ["s02/bold", "s02/run1/bold"]
        assert store.glob("*.txt") == ["notes.txt"]
        assert store.glob("notes.txt") == ["notes.txt"]
        assert store.glob("s0?/mask") == ["s01/mask"]
        assert store.glob("[!s]*") == ["a?b", "notes.txt"]

    def test_sub_views(self, store):
        sub = store.sub("one/two")
        sub["k"] = 5
        assert list(store) == ["one/two/k"]
        assert store["one/two/k"] == 5 and store.sub("one")["two/k"] == 5
        assert sub.url.endswith("root/prefix/one/two")
        with pytest.raises(InvalidKeyError):
            store.sub("../escape")

    def test_copy_and_move(self, store):
        store["a"] = np.arange(5)
        store["dir"] = {"x": np.zeros(2), "y": {"z": np.ones(1)}}
        store.copy("a", "b")
        store.copy("dir", "dir2")
        assert np.array_equal(store.load("b"), np.arange(5))
        assert sorted(store.sub("dir2")) == ["x", "y/z"]
        store.move("dir2", "moved")
        assert "dir2" not in store and sorted(store.sub("moved")) == ["x", "y/z"]
        store.move("b", "c/d")
        assert "b" not in store and np.array_equal(store.load("c/d"), np.arange(5))
        with pytest.raises(KeyNotFoundError):
            store.copy("nothing", "x")

    def test_info_fields(self, store):
        store.put(
            "i", np.zeros((100, 7), ">i4"), chunks=(30, 7), compression="zlib", metadata={"k": 1}
        )
        info = store.info("i")
        assert (
            info.key,
            info.kind,
            info.shape,
            info.dtype,
            info.chunks,
            info.order,
            info.nchunks,
            info.compression,
            info.encrypted,
            info.metadata,
        ) == ("i", "array", (100, 7), np.dtype(">i4"), (30, 7), "C", 4, "zlib", False, {"k": 1})
        assert info.size == store.backend.head(store.prefix + "i").size
        with pytest.raises(KeyNotFoundError):
            store.info("none")

    @pytest.mark.parametrize("bad", ["", "/x", "a//b", "a/./b", "../x", "x/"])
    def test_invalid_keys(self, store, bad):
        with pytest.raises(InvalidKeyError, match="invalid key"):
            store[bad] = 1
        with pytest.raises(InvalidKeyError):
            store[bad]
        assert list(store) == []

    def test_non_str_key(self, store):
        with pytest.raises(InvalidKeyError, match="not int"):
            store[3] = 1


class TestOptions:
    def test_read_only(self, store):
        store["x"] = 1
        ro = ccstore.Store(store.backend, store.prefix, store.options.updated(read_only=True))
        assert ro["x"] == 1
        for action in (
            lambda: ro.__setitem__("y", 1),
            lambda: ro.__delitem__("x"),
            lambda: ro.copy("x", "z"),
            lambda: ro.move("x", "z"),
            lambda: ro.put("y", 2),
        ):
            with pytest.raises(ReadOnlyError, match="read_only=True"):
                action()
        assert sorted(store) == ["x"]

    def test_open_rejects_unknown_options(self):
        with pytest.raises(TypeError, match=r"unknown option.*colour"):
            ccstore.open("memory://", colour="blue")

    def test_open_urls(self, tmp_path):
        s1 = ccstore.open(tmp_path / "plain")
        s1["k"] = 1
        s2 = ccstore.open(f"file://{tmp_path}/plain")
        assert s2["k"] == 1 and s2.url == (tmp_path / "plain").as_uri()
        named = ccstore.open("memory://shared-name/pre")
        named["k"] = 2
        assert ccstore.open("memory://shared-name")["pre/k"] == 2
        assert ccstore.open(named.url)["k"] == 2
        assert "k" not in ccstore.open("memory://")
        with pytest.raises(ValueError, match="no ccstore backend for URL scheme 'ftp'"):
            ccstore.open("ftp://host/x")

    def test_store_and_lazy_array_pickle(self, store):
        a = np.arange(100.0).reshape(10, 10)
        store.put("a", a, chunks=3)
        s2 = pickle.loads(pickle.dumps(store))
        assert s2 == store and s2["a"].shape == (10, 10)
        x = pickle.loads(pickle.dumps(store["a"]))
        assert np.array_equal(x[2:5, 7], a[2:5, 7])


class TestCorruption:
    """Stored objects damaged after writing raise CorruptObjectError naming the key."""

    def _stored(self, store, key):
        return bytearray(store.backend.read(store.prefix + key))

    def _replace(self, store, key, data):
        store.backend.write(store.prefix + key, [bytes(data)])

    @pytest.mark.parametrize("cut", [1, 10, 41, 500, 4000])
    def test_truncated(self, store, cut):
        store.put("a", np.arange(2000, dtype="i4"), chunks=100)
        data = self._stored(store, "a")
        self._replace(store, "a", data[:-cut])
        with pytest.raises(CorruptObjectError, match="'root/prefix/a'"):
            store.load("a")

    def test_flipped_byte_in_every_chunk_detected(self, store):
        a = np.arange(400, dtype="i4")
        store.put("a", a, chunks=100)
        pristine = self._stored(store, "a")
        for offset in range(8, 8 + 1600, 97):
            data = bytearray(pristine)
            data[offset] ^= 0x01
            self._replace(store, "a", data)
            with pytest.raises(CorruptObjectError, match="checksum mismatch"):
                store.load("a")

    def test_flipped_header_or_index_detected(self, store):
        store.put("a", np.arange(50, dtype="i4"), chunks=10)
        pristine = self._stored(store, "a")
        for back in range(41, len(pristine) - 8 - 200, 7):
            data = bytearray(pristine)
            data[-back] ^= 0x40
            self._replace(store, "a", data)
            with pytest.raises(CorruptObjectError):
                store.load("a")

    @pytest.mark.parametrize("dtype", [b'",i4"', b'"(i4"', b'"<x4"'])
    def test_malformed_dtype_with_valid_checksum(self, store, dtype):
        # numpy's dtype parser raises SyntaxError, IndexError and more on such strings
        store.put("a", np.arange(50, dtype="<i4"), chunks=10)
        data = self._stored(store, "a")
        at = data.index(b'"<i4"')
        data[at : at + 5] = dtype
        fix_checksums(data)
        self._replace(store, "a", data)
        with pytest.raises(CorruptObjectError, match=r"'root/prefix/a'.*unreadable header"):
            store.load("a")

    def test_chunk_decoding_to_another_size_with_valid_checksums(self, store):
        # A frame declaring fewer bytes than its chunk holds must not leave part of the
        # result unwritten (whole reads decode straight into the result).
        import struct

        import numcodecs

        a = np.random.default_rng(0).integers(0, 2**31, 400).astype("<i4")  # incompressible
        store.put("a", a, chunks=100, compression="zstd")
        data = self._stored(store, "a")
        entry = stored_index(data)[1]
        start, n = int(entry["offset"]), int(entry["nbytes"])
        short = numcodecs.Zstd(1).encode(np.zeros(50, "<i4"))
        pad = n - len(short) - 8  # a skippable frame: magic, payload size, payload
        data[start : start + n] = short + struct.pack("<II", 0x184D2A50, pad) + bytes(pad)
        fix_checksums(data)
        self._replace(store, "a", data)
        with pytest.raises(
            CorruptObjectError,
            match=r"'root/prefix/a'.*chunk 1 does not decode: decodes to 200 bytes, expected 400",
        ):
            store.load("a")
        with pytest.raises(CorruptObjectError, match="chunk 1 decodes to 200 bytes, expected 400"):
            store["a"][120]

    def test_foreign_object(self, store):
        store.backend.write(store.prefix + "foreign", [b"just some bytes, not ccstore" * 10])
        with pytest.raises(CorruptObjectError, match="not a ccstore object"):
            store["foreign"]
        store.backend.write(store.prefix + "tiny", [b"x"])
        with pytest.raises(CorruptObjectError, match="'root/prefix/tiny'"):
            store["tiny"]

    def test_corrupt_lazy_slice(self, store):
        a = np.arange(1000, dtype="f8").reshape(10, 100)
        store.put("a", a, chunks=(5, 50))
        data = self._stored(store, "a")
        data[8 + 8 * 250 * 3 + 5] ^= 0xFF  # inside chunk 3
        self._replace(store, "a", data)
        x = store["a"]
        assert np.array_equal(x[0:5, 0:50], a[0:5, 0:50])  # untouched chunk still reads
        with pytest.raises(CorruptObjectError, match="chunk 3"):
            x[7, 70]


def test_importing_ccstore_leaves_scipy_unimported():
    # scipy costs ~0.2 s and ~13 MiB; only sparse values need it, and they bring it along
    import subprocess
    import sys

    code = "import sys, ccstore; print('scipy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


class TestBatches:
    def test_update_and_load_many_round_trip_every_kind(self, store):
        values = {
            "a": np.arange(12, dtype="<i4").reshape(3, 4),
            "deep/b": "text",
            "c": b"\x00raw",
            "t": {"x": np.ones(3), "y": {"z": 1.5}},
        }
        store.update(values, d=[1, 2])
        assert sorted(store) == ["a", "c", "d", "deep/b", "t/x", "t/y/z"]
        loaded = store.load_many(["c", "a", "t", "deep/b", "d", "a"])
        assert list(loaded) == ["c", "a", "t", "deep/b", "d"]
        assert_same_array(loaded["a"], values["a"])
        assert (loaded["c"], loaded["deep/b"], loaded["d"]) == (b"\x00raw", "text", [1, 2])
        assert_same_array(loaded["t"]["x"], values["t"]["x"])
        assert loaded["t"]["y"] == {"z": 1.5}
        assert store.load_many([]) == {}

    def test_update_takes_pairs_and_the_last_value_of_a_key_wins(self, store):
        store["a"] = 0
        store.update([("a", 1), ("b", 2), ("a", 3)])
        assert store.load_many(["a", "b"]) == {"a": 3, "b": 2}

    def test_load_many_names_the_missing_key(self, store):
        store.update(a=1, b=2)
        with pytest.raises(KeyNotFoundError, match="'nope'"):
            store.load_many(["a", "nope", "b"])
        with pytest.raises(TypeError, match=r"not one key \('ab'\): use load"):
            store.load_many("ab")

    def test_update_of_a_read_only_store_writes_nothing(self, backend):
        writable = ccstore.Store(backend, "p")
        reader = ccstore.Store(backend, "p", writable.options.updated(read_only=True))
        with pytest.raises(ReadOnlyError, match="'a'"):
            reader.update(a=1, b=2)
        assert list(writable) == []

    def test_a_failed_write_in_update_keeps_the_old_value(self, store):
        store["bad"] = "old"
        with pytest.raises(UnsupportedValueError, match="pickling it failed"):
            store.update({"a": 1, "bad": lambda: 1})
        assert store.load_many(["a", "bad"]) == {"a": 1, "bad": "old"}


class _RendezvousBackend(ccstore.backends.memory.MemoryBackend):
    """A memory backend whose first write and first read of each key with a "b" segment
    wait until ``parties`` such calls are in progress at once: serial callers break the
    barrier."""

    def __init__(self, parties: int, slow_write: str = "", failed_write: str = "") -> None:
        super().__init__(f"rendezvous-{id(self)}")
        self.barrier = threading.Barrier(parties, timeout=5)
        self.slow_write, self.failed_write = slow_write, failed_write
        self.writing: set[str] = set()
        self.overlapped: set[str] = set()  # keys written while another write was under way
        self.seen: set[tuple[str, str]] = set()
        self.lock = threading.Lock()

    def _meet(self, kind: str, key: str) -> None:
        with self.lock:
            first = "/b/" in "/" + key and (kind, key) not in self.seen
            self.seen.add((kind, key))
        if first:
            self.barrier.wait()

    def write(self, key, parts, *, if_absent=False):
        with self.lock:
            if self.writing:
                self.overlapped |= self.writing | {key}
            self.writing.add(key)
        try:
            if key == self.failed_write:
                time.sleep(0.1)
                raise RuntimeError(f"injected failure writing {key!r}")
            if key == self.slow_write:
                time.sleep(0.5)
            self._meet("write", key)
            return super().write(key, parts, if_absent=if_absent)
        finally:
            with self.lock:
                self.writing.discard(key)

    def read(self, key, byte_range=None):
        self._meet("read", key)
        return super().read(key, byte_range)


class TestBatchConcurrency:
    def test_update_and_load_many_keep_several_objects_in_flight(self):
        store = ccstore.Store(_RendezvousBackend(3), options=ccstore.StoreOptions(concurrency=3))
        values = {f"b/{i}": np.full(5, i) for i in range(3)}
        store.update(values)  # one by one, the first write would wait for the others: 5 s
        for key, value in store.load_many(values).items():
            assert_same_array(value, values[key])

    @pytest.mark.parametrize("as_tree", [False, True])
    def test_values_larger_than_a_chunk_are_written_alone(self, as_tree):
        """The two small values are written together (they meet at the barrier), the large
        (and slow) one while nothing else is."""
        options = ccstore.StoreOptions(concurrency=2, chunk_bytes=1024)
        prefix = "t/" if as_tree else ""
        backend = _RendezvousBackend(2, slow_write=f"{prefix}big")
        store = ccstore.Store(backend, options=options)
        big, small = np.arange(512.0), [np.zeros(8), np.ones(8)]
        if as_tree:
            store["t"] = {"big": big, "b": {"0": small[0], "1": small[1]}}
            loaded = store.load("t")
            got = [loaded["big"], loaded["b"]["0"], loaded["b"]["1"]]
        else:
            store.update({"big": big, "b/0": small[0], "b/1": small[1]})
            got = list(store.load_many(["big", "b/0", "b/1"]).values())
        assert backend.overlapped == {f"{prefix}b/0", f"{prefix}b/1"}
        for value, want in zip(got, [big, *small]):
            assert_same_array(value, want)

    def test_a_prefix_is_copied_several_objects_at_a_time(self):
        store = ccstore.Store(_RendezvousBackend(3), options=ccstore.StoreOptions(concurrency=3))
        values = {f"b/{i}": np.full(5, i) for i in range(3)}
        store.update(values)
        store.copy("b", "c")  # each copy reads its source first: one by one, that waits 5 s
        for key, value in store.load_many(f"c/{i}" for i in range(3)).items():
            assert_same_array(value, values["b" + key[1:]])

    @pytest.mark.timeout(30, method="thread")  # a batch waiting on its own threads hangs
    @pytest.mark.parametrize("concurrency", [1, 2])
    def test_trees_inside_a_batch_do_not_wait_on_their_own_threads(self, concurrency):
        store = ccstore.open("memory://", concurrency=concurrency)
        trees = {f"t{i}": {"x": np.arange(i + 1), "y": {"z": i}} for i in range(4)}
        store.update(trees)
        loaded = store.load_many(trees)
        for key, tree in trees.items():
            assert_same_array(loaded[key]["x"], tree["x"])
            assert loaded[key]["y"] == tree["y"]

    def test_update_raises_only_after_the_writes_in_flight_are_done(self):
        store = ccstore.Store(
            _RendezvousBackend(1, slow_write="slow", failed_write="bad"),
            options=ccstore.StoreOptions(concurrency=2),
        )
        with pytest.raises(RuntimeError, match="injected failure writing 'bad'"):
            store.update({"bad": 1, "slow": np.zeros(3)})
        assert_same_array(store.load("slow"), np.zeros(3))
        assert "bad" not in store


def test_raw_nbytes_counts_what_a_value_stores():
    from ccstore.kinds import raw_nbytes

    csr = sp.random(50, 40, density=0.1, format="csr", dtype="f8")
    coo = csr.tocoo()
    assert raw_nbytes(np.zeros((3, 4), "f4")) == 48
    assert raw_nbytes(np.float64(1)) == 8
    assert raw_nbytes(csr) == csr.data.nbytes + csr.indices.nbytes + csr.indptr.nbytes
    assert raw_nbytes(coo) == coo.data.nbytes + coo.row.nbytes + coo.col.nbytes
    assert (raw_nbytes(b"abc"), raw_nbytes("héllo")) == (3, 5)
    assert raw_nbytes({"a": np.zeros(2), "b": {"c": b"xy", "d": 1.5}}) == 18
    assert raw_nbytes([1, 2, 3]) == raw_nbytes(None) == 0


class TestBatchProgress:
    """A batch reports as one: objects done of the batch, and bytes moved on its bar."""

    @staticmethod
    def _recorder():
        seen = []
        lock = threading.Lock()

        def record(done, total):
            with lock:
                seen.append((done, total))

        return seen, record

    def test_the_callback_counts_objects_of_every_batch(self):
        seen, record = self._recorder()
        store = ccstore.open("memory://", progress=record)
        store.update({f"k{i}": np.full(100, i) for i in range(5)})  # update takes no options
        assert sorted(seen) == [(i, 5) for i in range(1, 6)]
        seen.clear()
        assert len(store.load_many([f"k{i}" for i in range(5)] + ["k0"])) == 5
        assert sorted(seen) == [(i, 5) for i in range(1, 6)]
        seen.clear()
        quiet = ccstore.open("memory://")
        quiet.put("tree", {"a": np.ones(3), "b": {"c": "x", "d": 2}}, progress=record)
        assert sorted(seen) == [(1, 3), (2, 3), (3, 3)]
        seen.clear()
        assert quiet.load("tree", progress=record)["b"] == {"c": "x", "d": 2}
        assert sorted(seen) == [(1, 3), (2, 3), (3, 3)]

    def test_a_prefix_inside_a_batch_is_one_object_of_it(self):
        seen, record = self._recorder()
        store = ccstore.open("memory://")
        store.update(a=1, tree={"x": 1, "y": 2, "z": 3})
        store.load_many(["a", "tree"], progress=record)
        assert sorted(seen) == [(1, 2), (2, 2)]

    def test_the_bytes_of_a_prefix_inside_a_batch_count_in_it(self, capsys):
        store = ccstore.open("memory://")
        store.update(a=np.zeros(1000), tree={"x": np.zeros(1000), "y": {"z": np.zeros(1000)}})
        store.load_many(["a", "tree"], progress=True)
        err = capsys.readouterr().err
        assert "2/2" in err and "23.4kB" in err  # 3 x 8,000 bytes

    def test_one_bar_of_objects_with_the_bytes_moved(self, capsys):
        store = ccstore.open("memory://", progress=True)
        store.update({f"k{i}": np.zeros(1000) for i in range(20)})
        err = capsys.readouterr().err
        assert "update" in err and "20/20" in err and "156kB" in err  # 20 x 8,000 bytes
        assert "B/s" not in err  # no bar per object
        store.load_many([f"k{i}" for i in range(20)])
        err = capsys.readouterr().err
        assert "load_many" in err and "20/20" in err and "156kB" in err and "B/s" not in err

    def test_by_default_a_bar_only_for_batches_still_running_on_a_terminal(
        self, capsys, monkeypatch
    ):
        store = ccstore.open("memory://")
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
        store.update({f"k{i}": i for i in range(20)})
        assert capsys.readouterr().err == ""  # done before the bar's delay
        monkeypatch.setattr(ccstore.progress, "BATCH_BAR_DELAY", 0.0)
        store.load_many([f"k{i}" for i in range(20)])
        assert "20/20" in capsys.readouterr().err
