"""Page checksums: reading part of an uncoded chunk, exactly as numpy would, and only pages
whose checksums hold."""

from __future__ import annotations

import itertools
import math
from unittest import mock

import crc32c
import numpy as np
import pytest
from conftest import fix_checksums, read_cost, stored_index
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import advanced_selections, basic_selections, chunk_shapes

import ccstore
from ccstore import format as fmt
from ccstore import pages, reader
from ccstore.errors import CorruptObjectError
from ccstore.pages import PAGE_BYTES, ChunkChecksums, chunk_crc, page_runs, touched_pages

small_dtypes = st.sampled_from([np.dtype(t) for t in ("i1", "<u2", ">i4", "f4", "f8", "c16")])


@given(
    data=st.binary(max_size=300),
    cuts=st.lists(st.integers(0, 300), max_size=6),
    page=st.integers(1, 40),
)
def test_chunk_checksums_match_crcs_of_the_pieces(data, cuts, page):
    sums = ChunkChecksums(page)
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    for lo, hi in itertools.pairwise(bounds):
        sums.update(data[lo:hi])
    assert sums.crc == crc32c.crc32c(data)
    assert sums.page_crcs() == [
        crc32c.crc32c(data[i : i + page]) for i in range(0, len(data), page)
    ]
    assert chunk_crc(sums.page_crcs(), len(data), page) == crc32c.crc32c(data)


def _pages_by_brute_force(shape, order, itemsize, page, chunk_sel, transpose):
    offsets = np.arange(math.prod(shape)).reshape(shape, order=order)
    if transpose is not None:
        offsets = offsets.transpose(transpose)
    picked = np.asarray(offsets[chunk_sel]).reshape(-1) * itemsize
    touched = np.zeros(-(-math.prod(shape) * itemsize // page), bool)
    for first in picked:
        touched[first // page : (first + itemsize - 1) // page + 1] = True
    return touched


@given(data=st.data(), exact_limit=st.sampled_from([0, 3, 1 << 16]))
def test_touched_pages_cover_exactly_the_selected_elements(data, exact_limit):
    shape = data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple))
    order = data.draw(st.sampled_from("CF"))
    itemsize = data.draw(st.sampled_from([1, 2, 4, 8, 12]))
    page = data.draw(st.integers(itemsize, 40))
    transpose = data.draw(st.none() | st.permutations(range(len(shape))).map(tuple))
    tshape = shape if transpose is None else tuple(shape[a] for a in transpose)
    chunk_sel = []
    for n in tshape:
        if data.draw(st.booleans()):
            start = data.draw(st.integers(0, n - 1))
            stop, step = data.draw(st.integers(start, n)), data.draw(st.integers(1, 3))
            chunk_sel.append(slice(start, stop, step))
        else:
            picks = data.draw(st.lists(st.integers(0, n - 1), max_size=4))
            chunk_sel.append(np.array(picks, dtype=np.intp))
    arrays_at = [i for i, s in enumerate(chunk_sel) if not isinstance(s, slice)]
    if len(arrays_at) > 1:  # pointwise: numpy broadcasts index arrays together
        size = len(chunk_sel[arrays_at[0]])
        for i in arrays_at:
            chunk_sel[i] = np.resize(chunk_sel[i], size) if size else chunk_sel[i][:0]
    chunk_sel = tuple(chunk_sel)
    want = _pages_by_brute_force(shape, order, itemsize, page, chunk_sel, transpose)
    with mock.patch.object(pages, "_EXACT_ELEMENTS", exact_limit):
        got = touched_pages(shape, order, itemsize, page, [(chunk_sel, transpose)])
    if pages._selected_count(chunk_sel, tshape) <= exact_limit:
        np.testing.assert_array_equal(got, want)
    else:  # past the limit: one run of pages holding every selected element
        assert not (want & ~got).any()
        read = np.flatnonzero(got)
        assert len(read) == 0 or read[-1] - read[0] + 1 == len(read)
        if len(arrays_at) < 2:
            # orthogonal selections reach their bounds: no page beyond the selected ones
            first, last = np.flatnonzero(want)[[0, -1]] if want.any() else (0, -1)
            assert not got[:first].any() and not got[last + 1 :].any()


@pytest.mark.parametrize(
    ("touched", "gap", "runs"),
    [
        ("", 0, []),
        ("0000", 0, []),
        ("1101", 0, [(0, 2), (3, 4)]),
        ("1101", 1, [(0, 4)]),
        ("1001001", 1, [(0, 1), (3, 4), (6, 7)]),
        ("1001001", 2, [(0, 7)]),
    ],
)
def test_page_runs_merge_small_gaps(touched, gap, runs):
    assert page_runs(np.array([c == "1" for c in touched], bool), gap) == runs


def _small_pages(page):
    """Write objects with ``page``-byte pages (PAGE_BYTES is 64 KiB: small arrays fit a page)."""
    return mock.patch.object(fmt, "PAGE_BYTES", page)


@settings(max_examples=200)
@given(
    data=st.data(),
    shape=st.lists(st.integers(2, 12), min_size=1, max_size=3).map(tuple),
    dtype=small_dtypes,
    order=st.sampled_from("CF"),
    page=st.sampled_from([6, 10, 12, 20, 36]),  # elements straddle pages
)
def test_selections_through_pages_match_numpy(data, shape, dtype, order, page):
    # distinct non-zero values: a byte left unread in a result cannot pass for data
    array = (np.arange(math.prod(shape)) + 1).astype(dtype).reshape(shape, order=order)
    store = ccstore.open("memory://", coalesce_gap=0)
    with _small_pages(page):
        store.put("a", array, chunks=data.draw(chunk_shapes(array.shape)))
    x = store["a"]
    for draw in (basic_selections, advanced_selections):
        selection = data.draw(draw(array.shape))
        try:
            want = array[selection]
        except IndexError:
            continue
        with mock.patch.object(reader, "_chunk_buffer", _poisoned):
            np.testing.assert_array_equal(x[selection], want)
    outer = [data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4)) for n in shape]
    with mock.patch.object(reader, "_chunk_buffer", _poisoned):
        np.testing.assert_array_equal(x.oindex[tuple(outer)], array[np.ix_(*outer)])


def _poisoned(nbytes: int) -> np.ndarray:
    """A chunk buffer whose bytes are garbage until read into (np.empty may hold old data)."""
    return np.full(nbytes, 0xA5, np.uint8)


class TestPartialReads:
    """What reading part of a chunk costs, and what it checks, on every backend."""

    shape, chunks = (512, 1024), (256, 256)  # 256 KiB chunks of float32: 4 pages each

    @pytest.fixture
    def stored(self, store):
        array = np.random.default_rng(0).standard_normal(self.shape, dtype=np.float32)
        store.put("a", array, chunks=self.chunks)
        return store, array

    def test_a_row_reads_one_page_per_chunk(self, stored):
        store, array = stored
        x = store["a"]
        row, cost = read_cost(store, lambda: x[300])
        np.testing.assert_array_equal(row, array[300])
        assert (cost.reads, cost.bytes_read) == (4, 4 * PAGE_BYTES)

    def test_a_column_reads_whole_chunks(self, stored):
        store, array = stored
        x = store["a"]
        column, cost = read_cost(store, lambda: x[:, 300])
        np.testing.assert_array_equal(column, array[:, 300])
        chunk = 256 * 256 * 4  # chunks 1 and 5 of the 2 x 4 grid, three chunks apart
        merged = store.options.coalesce_gap >= 3 * chunk  # network stores read through
        assert (cost.reads, cost.bytes_read) == ((1, 5 * chunk) if merged else (2, 2 * chunk))

    def test_points_read_the_pages_they_fall_in(self, stored):
        store, array = stored
        rows, cols = np.array([0, 70, 300, 511]), np.array([5, 300, 600, 1023])  # 4 chunks
        x = store["a"]
        points, cost = read_cost(store, lambda: x[rows, cols])
        np.testing.assert_array_equal(points, array[rows, cols])
        assert (cost.reads, cost.bytes_read) == (4, 4 * PAGE_BYTES)

    def test_a_flipped_byte_in_a_read_page_is_an_error(self, stored):
        store, array = stored
        data = bytearray(store.backend.read(store.prefix + "a"))
        chunk = stored_index(data)[4]  # rows 256-511, columns 0-255
        data[int(chunk["offset"]) + 3 * PAGE_BYTES + 17] ^= 0x08  # page 3: rows 448-511
        store.backend.write(store.prefix + "a", [bytes(data)])
        x = store["a"]
        np.testing.assert_array_equal(x[300], array[300])  # pages 0-2 of the chunk are whole
        with pytest.raises(
            CorruptObjectError, match=r"'root/prefix/a'.*checksum mismatch in page 3 of chunk 4"
        ):
            x[500]

    def test_a_damaged_page_table_is_an_error(self, stored):
        store, array = stored
        data = bytearray(store.backend.read(store.prefix + "a"))
        table = _page_table(data)
        data[table + 4 * 4 * 4 + 1] ^= 0x01  # chunk 4's first entry
        store.backend.write(store.prefix + "a", [bytes(data)])
        x = store["a"]
        np.testing.assert_array_equal(x[100], array[100])  # chunks 0-3 are intact
        with pytest.raises(
            CorruptObjectError,
            match=r"'root/prefix/a'.*page table of chunk 4 of 'data' does not match the chunk's",
        ):
            x[256]
        np.testing.assert_array_equal(store.load("a"), array)  # whole chunks: chunk CRCs
        with pytest.raises(CorruptObjectError, match="page table of chunk 4"):
            store.verify("a")


def _page_table(data: bytearray) -> int:
    """Where the stored object's page table starts (its first array's)."""
    import json

    data_end, header_len, *_ = fmt.FOOTER.unpack(bytes(data[-fmt.FOOTER.size :]))
    header = json.loads(bytes(data[data_end : data_end + header_len]))
    return header["arrays"][0]["pages"]["offset"]


def test_objects_without_page_tables_read_whole_chunks(tmp_path):
    # objects written before page tables existed, and compressed ones, have none
    store = ccstore.open(tmp_path / "s")
    array = np.arange(512 * 1024, dtype="<f4").reshape(512, 1024)
    with _small_pages(1 << 30):
        store.put("old", array, chunks=(256, 256))
    store.put("zstd", array, chunks=(256, 256), compression="zstd")
    for key in ("old", "zstd"):
        x = store[key]
        assert x._layout.arrays["data"].page_bytes is None
        row, cost = read_cost(store, lambda x=x: x[300])
        np.testing.assert_array_equal(row, array[300])
        assert cost.reads == 1  # four whole chunks, coalesced


def test_encrypted_objects_have_no_page_table(tmp_path):
    store = ccstore.open(tmp_path / "s", encryption=bytes(range(32)))
    array = np.arange(512 * 1024, dtype="<f4").reshape(512, 1024)
    store.put("a", array, chunks=(256, 256))
    assert store["a"]._layout.arrays["data"].page_bytes is None
    np.testing.assert_array_equal(store["a"][300], array[300])


def test_page_table_outside_the_tail_is_read_once_per_chunk(tmp_path):
    array = np.random.default_rng(0).standard_normal((512, 1024), dtype=np.float32)
    ccstore.open(tmp_path / "s").put("a", array, chunks=(256, 256))
    data = (tmp_path / "s" / "a").read_bytes()
    table = _page_table(bytearray(data))
    # a tail read that holds header and index but not chunk 0's page checksums
    store = ccstore.open(tmp_path / "s", tail_bytes=len(data) - table - 8)
    x = store["a"]
    part, first = read_cost(store, lambda: x[10, :256])
    np.testing.assert_array_equal(part, array[10, :256])
    assert (first.reads, first.bytes_read) == (2, 4 * 4 + PAGE_BYTES)  # entries, then a page
    part, again = read_cost(store, lambda: x[11, :256])
    np.testing.assert_array_equal(part, array[11, :256])
    assert (again.reads, again.bytes_read) == (1, PAGE_BYTES)


@pytest.mark.parametrize("table_in_tail", [True, False])
def test_a_rewritten_object_is_an_error_not_its_new_data(tmp_path, table_in_tail):
    # a LazyArray reads the object as it was opened: page checksums must not come from
    # another version of it (same layout, other values) than the index it holds
    array = np.zeros((512, 1024), "<f4")
    ccstore.open(tmp_path / "s").put("a", array, chunks=(256, 256))
    size = (tmp_path / "s" / "a").stat().st_size
    table = _page_table(bytearray((tmp_path / "s" / "a").read_bytes()))
    store = ccstore.open(tmp_path / "s", tail_bytes=65536 if table_in_tail else size - table - 8)
    x = store["a"]
    store.put("a", array + 1, chunks=(256, 256))
    message = "checksum mismatch in page 0" if table_in_tail else "rewritten since it was opened"
    with pytest.raises(CorruptObjectError, match=message):
        x[10, :256]
    np.testing.assert_array_equal(store["a"][10, :256], 1)


def test_edited_objects_with_fixed_checksums_still_read(tmp_path):
    # fix_checksums recomputes page tables too: tests that edit objects stay honest
    store = ccstore.open(tmp_path / "s")
    array = np.zeros((512, 1024), "<f4")
    store.put("a", array, chunks=(256, 256))
    data = bytearray(store.backend.read("a"))
    data[int(stored_index(data)[0]["offset"])] = 0x3F
    fix_checksums(data)
    store.backend.write("a", [bytes(data)])
    assert store["a"][0, 0] != 0
    store.verify("a")
