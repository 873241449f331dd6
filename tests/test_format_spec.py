"""docs/format.md is the format: its standalone decoder must read what ccstore writes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import ccstore

SPEC = Path(__file__).parent.parent / "docs" / "format.md"


@pytest.fixture(scope="module")
def read_object():
    blocks = re.findall(r"```python\n(.*?)```", SPEC.read_text(), re.DOTALL)
    assert len(blocks) == 1, "docs/format.md should hold exactly one Python decoder"
    code = blocks[0]
    assert len(code.strip().splitlines()) <= 45
    namespace: dict = {"__name__": "spec"}
    exec(compile(code, str(SPEC), "exec"), namespace)
    return namespace["read_object"]


VALUES = {
    "c-order": np.arange(7 * 5 * 3, dtype=">i4").reshape(7, 5, 3),
    "f-order": np.asfortranarray(np.linspace(0, 1, 77).reshape(7, 11)),
    "structured": np.array(
        [(1, b"ab", [1.5, 2.5])], dtype=[("a", "<u2"), ("b", "S3"), ("c", "<f4", (2,))]
    ),
    "scalar": np.array(3 + 4j),
    "empty": np.zeros((0, 3), "f2"),
}


@pytest.mark.parametrize("name", sorted(VALUES))
@pytest.mark.parametrize("compression", [None, "zstd", "blosc"])
def test_spec_decoder_reads_arrays(tmp_path, read_object, name, compression):
    store = ccstore.open(tmp_path)
    value = VALUES[name]
    store.put(
        "v",
        value,
        chunks=tuple(max(1, n // 2) for n in value.shape) or None,
        compression=compression,
    )
    decoded = read_object((tmp_path / "v").read_bytes())
    got = decoded["arrays"]["data"]
    assert got.dtype == value.dtype and got.shape == value.shape
    assert got.tobytes(order="A") == value.tobytes(order="A")
    assert decoded["header"]["kind"] == "array"


def test_spec_decoder_reads_other_kinds(tmp_path, read_object):
    store = ccstore.open(tmp_path, chunk_bytes=16)
    store["t"] = "some text that spans several sixteen-byte chunks"
    store["m"] = sp.csr_array(np.eye(4))
    text = read_object((tmp_path / "t").read_bytes())["arrays"]["bytes"].tobytes().decode()
    assert text == "some text that spans several sixteen-byte chunks"
    sparse = read_object((tmp_path / "m").read_bytes())
    assert sparse["header"]["attrs"] == {"format": "csr", "container": "array", "shape": [4, 4]}
    assert sparse["arrays"]["indptr"].tolist() == [0, 1, 2, 3, 4]


def _spec_page_tables(data: bytes) -> dict[str, list[list[int]]]:
    """Each array's page table, per chunk, located as docs/format.md says."""
    import json
    import struct

    data_end, hlen, ilen = struct.unpack("<QQQ", data[-40:-16])
    header = json.loads(data[data_end : data_end + hlen])
    index = np.frombuffer(data[data_end + hlen : data_end + hlen + ilen], "<u8,<u8,<u4")
    tables = {}
    for spec in header["arrays"]:
        if "pages" not in spec:
            continue
        size, at = spec["pages"]["size"], spec["pages"]["offset"]
        nchunks = int(np.prod([-(-n // c) for n, c in zip(spec["shape"], spec["chunks"])]))
        per_chunk = []
        for _, nbytes, _ in index[spec["first_chunk"] : spec["first_chunk"] + nchunks]:
            count = -(-int(nbytes) // size)
            per_chunk.append(np.frombuffer(data[at : at + 4 * count], "<u4").tolist())
            at += 4 * count
        tables[spec["name"]] = per_chunk
    return tables


def test_page_tables_are_where_and_what_the_spec_says(tmp_path, read_object):
    import crc32c

    store = ccstore.open(tmp_path)
    rng = np.random.default_rng(0)
    dense = np.asfortranarray(rng.standard_normal((300, 500)))  # 1.2 MB: several chunks
    matrix = sp.random(3000, 3000, density=0.01, format="csr", random_state=0)
    store.put("dense", dense, chunks=(128, 200))
    store["sparse"] = matrix
    store.put("small", np.arange(100.0))  # one page: no table
    store.put("zstd", dense, compression="zstd")  # coded: no table
    for key, names in [("dense", {"data"}), ("sparse", {"data", "indices"})]:
        data = (tmp_path / key).read_bytes()
        tables = _spec_page_tables(data)
        assert set(tables) == names
        decoded = read_object(data)  # the decoder, which knows no tables, still reads it
        header = decoded["header"]
        index = np.frombuffer(
            data[-40 - int.from_bytes(data[-24:-16], "little") : -40], "<u8,<u8,<u4"
        )
        for spec in header["arrays"]:
            if spec["name"] not in tables:
                continue
            size = spec["pages"]["size"]
            assert size == 65536
            for k, crcs in enumerate(tables[spec["name"]]):
                offset, nbytes, _ = index[spec["first_chunk"] + k]
                chunk = data[int(offset) : int(offset + nbytes)]
                pages = [chunk[i : i + size] for i in range(0, len(chunk), size)]
                assert crcs == [crc32c.crc32c(page) for page in pages]
    for key in ("small", "zstd"):
        assert _spec_page_tables((tmp_path / key).read_bytes()) == {}
    np.testing.assert_array_equal(store["dense"][100:140, 7], dense[100:140, 7])
