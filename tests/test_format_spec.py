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
