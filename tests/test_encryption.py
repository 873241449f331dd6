"""Client-side encryption: every kind round-trips, every tampering is caught, keys rotate."""

from __future__ import annotations

import base64
import itertools
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import fix_checksums
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import ccstore
from ccstore import (
    CCStoreError,
    CorruptObjectError,
    DecryptionError,
    EncryptedObjectError,
    EncryptionKey,
    Keyring,
    PassphraseKey,
)
from ccstore.backends.memory import MemoryBackend
from ccstore.format import FOOTER, INDEX_ENTRY

_names = itertools.count()
FAST_SCRYPT = {"n": 1 << 12, "r": 8, "p": 1}  # tests only: real keys use the defaults
SECRET_TEXT = "PLAINTEXT-MARKER-7f3a"


@pytest.fixture
def key():
    return ccstore.generate_key()


@pytest.fixture
def enc_store(backend, key):
    with ccstore.Store(backend, "root/enc", ccstore.StoreOptions(encryption=key)) as s:
        yield s


def values():
    marker = SECRET_TEXT
    return {
        "array": np.arange(5000, dtype="<f8").reshape(50, 100),
        "fortran": np.asfortranarray(np.arange(600, dtype=">i4").reshape(20, 30)),
        "structured": np.array(
            [(1, 2.5, b"ab")] * 7, dtype=[("a", "i2"), ("b", "f4"), ("c", "S2")]
        ),
        "scalar": np.float32(3.5),
        "empty": np.zeros((0, 4), "u2"),
        "sparse": sp.random(40, 30, density=0.2, format="csr", random_state=1),
        "sparse_array": sp.coo_array(np.eye(6)),
        "json": {"note": marker, "n": [1, 2.5, None, True]},
        "text": f"{marker} — ünïcode",
        "bytes": marker.encode() * 3,
        "pickle": {marker, 1, 2},
    }


def stored_bytes(store, key):
    return bytearray(store.backend.read(store.prefix + key))


def replace(store, key, data):
    store.backend.write(store.prefix + key, [bytes(data)])


def assert_equal_value(got, want):
    if isinstance(want, np.ndarray):
        assert type(got) is np.ndarray and got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes(order="A") == want.tobytes(order="A")
    elif sp.issparse(want):
        assert type(got) is type(want) and got.shape == want.shape
        assert (got != want).nnz == 0
    elif isinstance(want, np.generic):
        assert type(got) is type(want) and got == want
    else:
        assert type(got) is type(want) and got == want


class TestRoundTrips:
    def test_every_kind_on_every_backend(self, enc_store, key):
        reader = ccstore.Store(
            enc_store.backend, enc_store.prefix, ccstore.StoreOptions(encryption=key)
        )
        for name, value in values().items():
            enc_store.put(name, value, metadata={"label": SECRET_TEXT})
        for name, value in values().items():
            got = reader.load(name, allow_pickle=True)
            assert_equal_value(got, value)
            info = reader.info(name)
            assert info.encrypted and info.key_id == EncryptionKey(key).key_id
            assert info.metadata == {"label": SECRET_TEXT}
        # No stored byte of any object shows the plaintext marker or the metadata.
        backend = enc_store.backend
        for full in backend.list(enc_store.prefix):
            assert SECRET_TEXT.encode() not in backend.read(full), full

    def test_lazy_slices_fetch_only_touched_chunks(self, enc_store):
        a = np.arange(200 * 300, dtype="f4").reshape(200, 300)
        enc_store.put("a", a, chunks=(20, 300), compression="zstd")
        x = enc_store["a"]
        before = enc_store.stats.snapshot()
        assert np.array_equal(x[45], a[45])
        delta = enc_store.stats.snapshot() - before
        assert delta.reads == 1
        chunk = x._layout.index[2]
        assert delta.bytes_read == chunk["nbytes"]
        assert np.array_equal(x[::7, 5:250:3], a[::7, 5:250:3])
        assert np.array_equal(np.asarray(x), a)

    def test_tree_is_encrypted_per_leaf(self, enc_store, key):
        tree = {"x": np.arange(10), "meta": {"y": np.ones(3, "u1")}}
        enc_store["t"] = tree
        assert all(enc_store.info(k).encrypted for k in ("t/x", "t/meta/y"))
        got = enc_store.load("t")
        assert np.array_equal(got["x"], tree["x"]) and np.array_equal(got["meta"]["y"], [1, 1, 1])

    def test_per_write_encrypt_flag(self, backend, key):
        plain = ccstore.Store(backend, "p")
        with pytest.raises(ValueError, match="cannot encrypt 'a': the store has no key"):
            plain.put("a", b"x", encrypt=True)
        keyed = ccstore.Store(backend, "p", ccstore.StoreOptions(encryption=key))
        keyed.put("clear", b"visible", encrypt=False)
        keyed.put("secret", b"hidden", encrypt=True)
        assert plain.load("clear") == b"visible" and not plain.info("clear").encrypted
        assert keyed.info("secret").encrypted and keyed.load("secret") == b"hidden"

    def test_require_encryption_refuses_unencrypted_objects(self, backend, key):
        keyed = ccstore.Store(backend, "p", ccstore.StoreOptions(encryption=key))
        keyed.put("clear", np.arange(10), encrypt=False)
        keyed.put("secret", np.arange(10))
        strict = ccstore.Store(
            backend, "p", ccstore.StoreOptions(encryption=key, require_encryption=True)
        )
        message = r"'p/clear' is corrupt or unreadable: it is stored unencrypted"
        for read in (strict.load, strict.__getitem__, strict.verify):
            with pytest.raises(ccstore.UnencryptedObjectError, match=message):
                read("clear")
        assert isinstance(ccstore.UnencryptedObjectError("k"), CorruptObjectError)
        assert np.array_equal(strict.load("secret"), np.arange(10))
        assert np.array_equal(strict["secret"][3:5], [3, 4]) and strict.verify("secret")
        assert not strict.info("clear").encrypted  # info still describes it
        with pytest.raises(ValueError, match="require_encryption=True needs encryption="):
            ccstore.StoreOptions(require_encryption=True)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        shape=st.lists(st.integers(0, 9), min_size=0, max_size=3),
        dtype=st.sampled_from(["u1", "<i2", ">f4", "<c16", "M8[s]"]),
        compression=st.sampled_from([None, "zstd", "blosc", "lz4"]),
        chunk=st.integers(1, 5),
        order=st.sampled_from("CF"),
    )
    def test_hypothesis_arrays(self, shape, dtype, compression, chunk, order):
        store = ccstore.open("memory://hyp-enc", encryption=b"\x07" * 32)
        rng = np.random.default_rng(0)
        raw = rng.integers(0, 255, size=int(np.prod(shape)) * np.dtype(dtype).itemsize, dtype="u1")
        a = np.frombuffer(raw.tobytes(), dtype).reshape(shape)
        a = np.asfortranarray(a) if order == "F" else a
        store.put("a", a, compression=compression, chunks=chunk if shape else None)
        got = store.load("a")
        assert got.dtype == a.dtype and got.shape == a.shape
        assert got.tobytes(order="A") == a.tobytes(order="A")


class TestKeys:
    def test_generate_key(self):
        k1, k2 = ccstore.generate_key(), ccstore.generate_key()
        assert isinstance(k1, bytes) and len(k1) == 32 and k1 != k2

    def test_key_id_is_a_stable_fingerprint_and_repr_hides_the_key(self, key):
        k = EncryptionKey(key)
        assert k.key_id == EncryptionKey(key).key_id != EncryptionKey(b"\0" * 32).key_id
        assert key.hex() not in repr(k) and k.key_id in repr(k)
        assert EncryptionKey(key, key_id="lab-2026").key_id == "lab-2026"

    def test_bad_keys(self):
        with pytest.raises(ValueError, match="32 bytes, got 16"):
            EncryptionKey(b"x" * 16)
        with pytest.raises(TypeError, match="a str is not an encryption key"):
            ccstore.open("memory://", encryption="hunter2")
        with pytest.raises(ValueError, match="passphrase is empty"):
            EncryptionKey.from_passphrase("")

    @pytest.mark.parametrize("form", ["raw", "hex", "base64"])
    def test_from_file(self, tmp_path, key, form):
        path = tmp_path / "key"
        encoded = {"raw": key, "hex": key.hex().encode(), "base64": base64.b64encode(key)}
        path.write_bytes(encoded[form] + (b"\n" if form != "raw" else b""))
        assert EncryptionKey.from_file(path) == EncryptionKey(key)

    def test_from_file_rejects_other_content(self, tmp_path):
        path = tmp_path / "key"
        path.write_text("not a key")
        with pytest.raises(ValueError, match="does not hold a 32-byte key"):
            EncryptionKey.from_file(path)

    def test_from_env(self, monkeypatch, key):
        monkeypatch.setenv("MY_CCSTORE_KEY", key.hex())
        assert EncryptionKey.from_env("MY_CCSTORE_KEY") == EncryptionKey(key)
        monkeypatch.setenv(ccstore.encryption.DEFAULT_KEY_ENV, base64.b64encode(key).decode())
        assert EncryptionKey.from_env() == EncryptionKey(key)
        monkeypatch.delenv("MY_CCSTORE_KEY")
        with pytest.raises(KeyError, match="MY_CCSTORE_KEY"):
            EncryptionKey.from_env("MY_CCSTORE_KEY")

    def test_keys_and_stores_pickle(self, key):
        pk = EncryptionKey.from_passphrase("pass", **FAST_SCRYPT)
        for k in (EncryptionKey(key), pk, Keyring([key, pk])):
            assert pickle.loads(pickle.dumps(k)) == k
        store = ccstore.open("memory://pickled-enc", encryption=key)
        store["a"] = np.arange(100)
        x = pickle.loads(pickle.dumps(store["a"]))
        assert np.array_equal(x[10:20], np.arange(10, 20))

    def test_passphrase_parameters_stored_and_honoured(self):
        written = EncryptionKey.from_passphrase("correct horse", n=1 << 13, r=4, p=2)
        store = ccstore.open("memory://pass", encryption=written)
        store["a"] = np.arange(10)
        header = store._raw_layout("a").header["encryption"]
        assert header["kdf"]["name"] == "scrypt"
        assert (header["kdf"]["n"], header["kdf"]["r"], header["kdf"]["p"]) == (1 << 13, 4, 2)
        assert base64.b64decode(header["kdf"]["salt"]) == written.salt
        # A reader with default cost parameters and its own salt derives with the stored ones.
        reader = ccstore.open("memory://pass", encryption=PassphraseKey("correct horse"))
        assert np.array_equal(reader.load("a"), np.arange(10))
        with pytest.raises(DecryptionError, match="wrong passphrase"):
            ccstore.open("memory://pass", encryption=PassphraseKey("wrong", **FAST_SCRYPT)).load(
                "a"
            )

    def test_hostile_scrypt_parameters_refused(self):
        store = ccstore.open("memory://hostile", encryption=PassphraseKey("pw", **FAST_SCRYPT))
        store["a"] = b"x"
        data = bytearray(store.backend.read("a"))
        layout = store._raw_layout("a")
        header = layout.header
        header["encryption"]["kdf"]["n"] = 1 << 40
        store.backend.write("a", [bytes(data[: layout.data_end]) + layout.tail_with_header(header)])
        with pytest.raises(DecryptionError, match="no key in the keyring opens it"):
            store.load("a")


class TestErrors:
    def test_no_key_says_encrypted(self, enc_store, key):
        enc_store["a"] = np.arange(10)
        plain = ccstore.Store(enc_store.backend, enc_store.prefix)
        with pytest.raises(EncryptedObjectError, match=r"'root/enc/a' is encrypted \(key id"):
            plain["a"]
        info = plain.info("a")  # metadata stays readable without the key ...
        assert info.encrypted and info.shape == (10,) and info.key_id == EncryptionKey(key).key_id
        assert plain.verify("a")  # ... and checksums can be verified

    def test_wrong_key_names_the_key_id(self, enc_store, key):
        enc_store["a"] = np.arange(10)
        other = ccstore.Store(
            enc_store.backend, enc_store.prefix, ccstore.StoreOptions(encryption=b"\1" * 32)
        )
        key_id = EncryptionKey(key).key_id
        with pytest.raises(DecryptionError, match=f"key id '{key_id}'.*no key in the keyring"):
            other["a"]

    def test_keyring_finds_keys_by_id_and_by_trial(self, key):
        store = ccstore.open("memory://ring", encryption=EncryptionKey(key, key_id="named"))
        store["a"] = np.arange(5)
        ring = Keyring([b"\2" * 32, key])  # the key is present under its fingerprint id
        assert np.array_equal(ccstore.open("memory://ring", encryption=ring).load("a"), range(5))

    def test_zarr_refuses_encryption(self, key):
        pytest.importorskip("zarr")
        with pytest.raises(ValueError, match="zarr data would be stored in the clear"):
            ccstore.ZarrStore("memory://zarr-enc", encryption=key)


class TestTampering:
    def _store(self):
        backend = MemoryBackend(f"tamper-{next(_names)}")
        store = ccstore.Store(backend, "", ccstore.StoreOptions(encryption=b"\x11" * 32))
        a = np.arange(3000, dtype="<i4").reshape(30, 100)
        store.put("a", a, chunks=(10, 50), metadata={"m": 1})
        return store, a

    @settings(max_examples=300, deadline=None)
    @given(position=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7), fix=st.booleans())
    def test_any_bit_flip_is_an_error(self, position, bit, fix):
        store, _ = self._store()
        pristine = stored_bytes(store, "a")
        data = bytearray(pristine)
        offset = int(position * len(data))
        data[offset] ^= 1 << bit
        if fix and offset < len(data) - FOOTER.size:
            fix_checksums(data)
        assume(data != pristine)  # a flipped checksum that fixing restored is no change
        replace(store, "a", data)
        with pytest.raises((CorruptObjectError, DecryptionError), match="'a'"):
            store.verify("a")
        with pytest.raises((CorruptObjectError, DecryptionError), match="'a'"):
            store.load("a")

    def test_every_bit_of_the_tail_is_covered(self):
        """Exhaustive over header, index and footer (checksums fixed where they can be): a
        random position rarely lands on the few bytes that matter, such as a field name."""
        store, _ = self._store()
        keyless = ccstore.Store(store.backend, "")
        pristine = stored_bytes(store, "a")
        data_end = FOOTER.unpack(pristine[-FOOTER.size :])[0]
        with_key = (CorruptObjectError, DecryptionError)
        without_key = (CorruptObjectError, EncryptedObjectError)
        missed = []
        for offset, bit in itertools.product(range(data_end, len(pristine)), range(8)):
            data = bytearray(pristine)
            data[offset] ^= 1 << bit
            if offset < len(data) - FOOTER.size:
                fix_checksums(data)
            if data == pristine:
                continue  # a flipped checksum that fixing restored
            replace(store, "a", data)
            for name, call, errors in (
                ("verify", store.verify, with_key),
                ("load", store.load, with_key),
                ("load without the key", keyless.load, without_key),
            ):
                try:
                    call("a")
                    missed.append((offset - data_end, bit, name))
                except errors as error:
                    if "'a'" not in str(error):
                        missed.append((offset - data_end, bit, f"{name}: {error}"))
        assert missed == []

    def test_every_region_with_checksums_fixed(self):
        store, _ = self._store()
        pristine = stored_bytes(store, "a")
        layout = store._raw_layout("a")
        header_start = layout.data_end
        header_len = FOOTER.unpack(pristine[-FOOTER.size :])[1]
        index_start = header_start + header_len
        regions = {
            "chunk body": [int(e["offset"]) + 3 for e in layout.index],
            "chunk tag": [int(e["offset"] + e["nbytes"]) - 1 for e in layout.index],
            "header": range(header_start, index_start, 3),
            # offset and length fields of each index entry (its checksum is fixed anyway)
            "index": [index_start + i * INDEX_ENTRY.itemsize + j for i in range(6) for j in (0, 8)],
        }
        for _region, offsets in regions.items():
            for offset in offsets:
                data = bytearray(pristine)
                data[offset] ^= 0x20
                fix_checksums(data)
                assert data != pristine
                replace(store, "a", data)
                with pytest.raises((CorruptObjectError, DecryptionError)):
                    store.load("a")  # a flip in the {region} must not go unnoticed

    def test_swapped_chunks_within_an_object(self):
        store, _ = self._store()
        data = stored_bytes(store, "a")
        index = store._raw_layout("a").index
        (o0, n0), (o1, n1) = [(int(e["offset"]), int(e["nbytes"])) for e in index[:2]]
        assert n0 == n1
        data[o0 : o0 + n0], data[o1 : o1 + n1] = data[o1 : o1 + n1], data[o0 : o0 + n0]
        fix_checksums(data)
        replace(store, "a", data)
        with pytest.raises(DecryptionError, match="chunk 0 of 'data' fails authentication"):
            store.load("a")

    def test_chunk_swapped_in_from_another_object_with_the_same_key(self):
        store, a = self._store()
        store.put("b", a[::-1].copy(), chunks=(10, 50))
        data, donor = stored_bytes(store, "a"), stored_bytes(store, "b")
        entry = store._raw_layout("a").index[3]
        start, end = int(entry["offset"]), int(entry["offset"] + entry["nbytes"])
        data[start:end] = donor[start:end]
        fix_checksums(data)
        replace(store, "a", data)
        with pytest.raises(DecryptionError, match="chunk 3 of 'data'"):
            store.load("a")

    def test_object_moved_outside_ccstore(self):
        store, _ = self._store()
        store.backend.copy("a", "elsewhere")
        with pytest.raises(DecryptionError, match=r"written under key 'a'.*Store\.copy"):
            store.load("elsewhere")

    def test_same_data_encrypts_differently(self):
        store, a = self._store()
        store.put("b", a, chunks=(10, 50), metadata={"m": 1})
        first, second = stored_bytes(store, "a"), stored_bytes(store, "b")
        index = store._raw_layout("a").index
        o, n = int(index[0]["offset"]), int(index[0]["nbytes"])
        assert first[o : o + n] != second[o : o + n]


class TestCopyMoveRotate:
    def test_copy_and_move_rebind(self, enc_store):
        a = np.arange(10_000, dtype="f8")
        enc_store.put("a", a, chunks=1000)
        enc_store.copy("a", "dir/b")
        enc_store.move("a", "c")
        assert "a" not in enc_store
        for k in ("dir/b", "c"):
            assert np.array_equal(enc_store.load(k), a)
            assert enc_store.verify(k)
        enc_store.copy("dir", "dir2")
        assert np.array_equal(enc_store.load("dir2/b"), a)

    def test_copy_without_key_refuses_rather_than_breaking(self, enc_store):
        enc_store["a"] = np.arange(10)
        plain = ccstore.Store(enc_store.backend, enc_store.prefix)
        with pytest.raises(EncryptedObjectError):
            plain.copy("a", "b")
        assert "b" not in plain

    def test_rotation_keeps_data_readable_with_the_new_key_only(self, enc_store, key):
        a = np.arange(50_000, dtype="f4").reshape(500, 100)
        enc_store.put("x/a", a, chunks=(50, 100), compression="zstd")
        enc_store["x/j"] = {"v": 1}
        enc_store.put("x/clear", b"clear", encrypt=False)
        before = {k: stored_bytes(enc_store, k) for k in ("x/a", "x/j")}
        new = EncryptionKey.from_passphrase("rotated", **FAST_SCRYPT)
        assert ccstore.rotate_key(enc_store, new, key, prefix="x") == 2
        assert ccstore.rotate_key(enc_store, new, key, prefix="x") == 0  # idempotent
        for k, old in before.items():  # chunks were not rewritten, only the tail
            data_end = enc_store._raw_layout(enc_store.prefix + k).data_end
            assert stored_bytes(enc_store, k)[:data_end] == old[:data_end]
        fresh = ccstore.Store(
            enc_store.backend, enc_store.prefix, ccstore.StoreOptions(encryption=new)
        )
        assert np.array_equal(fresh.load("x/a"), a) and fresh.load("x/j") == {"v": 1}
        assert fresh.info("x/a").key_id == new.key_id
        with pytest.raises(DecryptionError):
            enc_store.load("x/a")  # the old key no longer opens it
        assert enc_store.load("x/clear") == b"clear"

    def test_rotation_reports_objects_it_cannot_open(self, key):
        store = ccstore.open("memory://rot-fail", encryption=key)
        store["good"] = b"1"
        store.backend.copy("good", "moved")
        with pytest.raises(CCStoreError, match=r"rotated 1 object\(s\); 1 could not be opened"):
            store.rotate_key(b"\3" * 32)
