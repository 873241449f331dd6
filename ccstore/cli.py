"""Command-line interface: ``ccstore demo`` shows what a store does, with the bytes it moved."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from . import open as open_store

__all__ = ["main"]


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:,.1f} MiB"


def demo(url: str | None, size_mb: int, keep: bool) -> None:
    """Write an array of about ``size_mb`` MB, slice it back, and print the cost of each step."""
    workdir = None
    if url is None:
        workdir = tempfile.mkdtemp(prefix="ccstore-demo-")
        url = workdir
    store = open_store(url, compression="zstd")
    rows = max(size_mb * 10**6 // (4 * 5000), 1)
    rng = np.random.default_rng(0)
    # Smooth signal plus noise: compressible like real measurements, not like pure noise.
    array = np.sin(np.arange(rows * 5000, dtype=np.float32) / 500).reshape(
        rows, 5000
    ) + rng.standard_normal((rows, 5000), dtype=np.float32).round(2)
    print(f"store: {store.url}")
    try:
        t0 = time.perf_counter()
        store["demo/signal"] = array
        took = time.perf_counter() - t0
        info = store.info("demo/signal")
        print(
            f"wrote demo/signal: shape {array.shape} {array.dtype}, {_mib(array.nbytes)} in "
            f"{info.nchunks} chunks of {info.chunks}, {info.compression} -> stored "
            f"{_mib(info.size)} in {took:.2f} s"
        )
        before = store.stats.snapshot()
        x = store["demo/signal"]
        opened = store.stats.snapshot() - before
        print(f"opened lazily: {x} ({opened.requests} request, {_mib(opened.bytes_read)} read)")
        points = tuple(rng.integers(0, n, 100) for n in array.shape)
        row = min(1234, rows - 1)
        slices = (
            (f"row {row}", (row,)),
            ("column 42", (slice(None), 42)),
            ("block [100:200, ::4]", (slice(100, 200), slice(None, None, 4))),
            ("100 random points", points),
        )
        _read_slices(store, x, array, info.size, slices)
        before = store.stats.snapshot()
        t0 = time.perf_counter()
        whole = np.asarray(x)
        took = time.perf_counter() - t0
        cost = store.stats.snapshot() - before
        assert np.array_equal(whole, array)
        print(
            f"read whole array: {cost.requests} requests, {_mib(cost.bytes_read)} in "
            f"{took:.2f} s (values verified)"
        )
        store.put("demo/raw", array, compression=None)
        raw = store.info("demo/raw")
        print(
            f"wrote demo/raw: the same array uncompressed, stored {_mib(raw.size)}; its slices "
            "read only the 64 KiB pages they touch"
        )
        _read_slices(store, store["demo/raw"], array, raw.size, slices)
    finally:
        store.close()
        if workdir is not None and not keep:
            shutil.rmtree(workdir)
        elif workdir is not None:
            print(f"kept the store at {workdir}")


def _read_slices(store, x, array, stored: int, slices) -> None:
    """Read each selection of ``x``, check it against ``array``, and print what it cost."""
    for label, selection in slices:
        before = store.stats.snapshot()
        part = x[selection]
        cost = store.stats.snapshot() - before
        assert np.array_equal(part, array[selection])
        print(
            f"read {label}: shape {part.shape}, {cost.requests} requests, "
            f"{_mib(cost.bytes_read)} read of {_mib(stored)} stored (values verified)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccstore", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", help="write ~100 MB, slice it back, print what it cost")
    run.add_argument("url", nargs="?", help="store URL or path (default: a temporary directory)")
    run.add_argument("--size-mb", type=int, default=100, help="array size in MB (default 100)")
    run.add_argument("--keep", action="store_true", help="keep the temporary store")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.url, args.size_mb, args.keep)
    return 0
