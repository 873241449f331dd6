"""Local directory store vs np.save / np.load (and np.load(mmap_mode="r") for slices).

A 1 GiB float32 array (16384 x 16384) on the same disk, in the same run: whole writes and
reads, uncompressed and zstd, and row / column / 100-point slices. Each measurement runs in a
fresh process (peak RSS is its own); times are medians. Prints a table and writes it into
docs/benchmarks.md.

    python benchmarks/bench_local.py [--workdir DIR] [--runs 3] [--side 16384]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from harness import median_of, table, timed
from report import write_section


def _points(side: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.integers(0, side, 100), rng.integers(0, side, 100)


def _selection(which: str, side: int):
    if which == "row":
        return (side // 3,)
    if which == "column":
        return (slice(None), side // 3)
    return _points(side)


def make_source(path: Path, side: int) -> None:
    """A smooth field plus quantised noise: compresses like real measurements do."""
    rows = np.sin(np.arange(side, dtype=np.float32) / 300)
    cols = np.cos(np.arange(side, dtype=np.float32) / 700)
    array = np.add.outer(rows, cols)
    array += np.random.default_rng(0).integers(-8, 8, array.shape).astype(np.float32) / 64
    np.save(path, array)


# -- operations, each run in a fresh process; they return (seconds, extra) ----------------


# Every write goes to a new file: ccstore always does (temporary file, then rename), and
# overwriting a file in place would let np.save reuse the page cache the last run warmed.


def write_numpy(source: str, target: str):
    array = np.load(source)
    fresh = f"{target}.{uuid.uuid4().hex}.npy"
    seconds = timed(lambda: np.save(fresh, array))[0]
    os.replace(fresh, target)
    return seconds, {}


def write_ccstore(source: str, target: str, compression: str | None):
    import ccstore

    array = np.load(source)
    store = ccstore.open(target, compression=compression)
    seconds, _ = timed(lambda: store.__setitem__("a", array))
    return seconds, {"stored": store.info("a").size}


def read_numpy(target: str):
    seconds, array = timed(lambda: np.load(target))
    return seconds, {"bytes_read": array.nbytes}


def read_ccstore(target: str):
    import ccstore

    store = ccstore.open(target)
    seconds, _ = timed(lambda: store.load("a"))
    return seconds, {"bytes_read": store.stats.bytes_read, "requests": store.stats.requests}


def slice_mmap(target: str, which: str, side: int):
    array = np.load(target, mmap_mode="r")
    selection = _selection(which, side)
    seconds, _ = timed(lambda: np.array(array[selection]))
    pages = {"row": side * 4 // 4096, "column": side, "points": 100}[which]
    return seconds, {"bytes_read": pages * 4096, "requests": "page faults"}


def slice_ccstore(target: str, which: str, side: int):
    import ccstore

    store = ccstore.open(target)
    selection = _selection(which, side)
    seconds, _ = timed(lambda: store["a"][selection])
    return seconds, {"bytes_read": store.stats.bytes_read, "requests": store.stats.requests}


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--side", type=int, default=16384)
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ccstore-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    me = "bench_local"
    try:
        source = work / "source.npy"
        make_source(source, args.side)
        nbytes = args.side * args.side * 4
        npy, raw, zst = work / "a.npy", work / "raw", work / "zstd"
        rows = []

        def add(op, label, result, reference):
            ratio = reference.seconds / result.seconds
            rows.append(
                [
                    op,
                    label,
                    f"{nbytes / result.seconds / 2**20:,.0f}",
                    f"{ratio:.2f}x",
                    _mib(result.peak_rss - result.baseline_rss),
                    _mib(result.extra.get("bytes_read", 0)) if "bytes_read" in result.extra else "",
                    result.extra.get("requests", ""),
                ]
            )

        base = median_of(args.runs, f"{me}:write_numpy", source=str(source), target=str(npy))
        add("write", "np.save", base, base)
        for label, target, codec in (("ccstore", raw, None), ("ccstore zstd", zst, "zstd")):
            r = median_of(
                args.runs,
                f"{me}:write_ccstore",
                source=str(source),
                target=str(target),
                compression=codec,
            )
            add("write", f"{label} (stored {_mib(r.extra['stored'])} MiB)", r, base)
        base = median_of(args.runs, f"{me}:read_numpy", target=str(npy))
        add("read whole", "np.load", base, base)
        for label, target in (("ccstore", raw), ("ccstore zstd", zst)):
            add(
                "read whole",
                label,
                median_of(args.runs, f"{me}:read_ccstore", target=str(target)),
                base,
            )
        slice_rows = []
        for which in ("row", "column", "points"):
            base = median_of(
                args.runs, f"{me}:slice_mmap", target=str(npy), which=which, side=args.side
            )
            for label, target in (
                ("np.load(mmap_mode='r')", None),
                ("ccstore", raw),
                ("ccstore zstd", zst),
            ):
                r = (
                    base
                    if target is None
                    else median_of(
                        args.runs,
                        f"{me}:slice_ccstore",
                        target=str(target),
                        which=which,
                        side=args.side,
                    )
                )
                slice_rows.append(
                    [
                        which,
                        label,
                        f"{r.seconds * 1e3:,.1f}",
                        f"{base.seconds / r.seconds:.2f}x",
                        _mib(r.extra["bytes_read"]),
                        r.extra["requests"],
                    ]
                )
        whole = table(
            [
                "operation",
                "method",
                "MiB/s",
                "speed vs numpy",
                "peak RSS beyond the array (MiB)",
                "MiB read",
                "requests",
            ],
            rows,
        )
        slices = table(
            ["slice", "method", "ms", "speed vs mmap", "MiB read", "requests"], slice_rows
        )
        text = (
            f"1 GiB float32 ({args.side} x {args.side}), local disk, page cache warm for "
            f"every method, median of {args.runs} fresh-process runs. Ratios > 1 mean "
            f"faster than numpy.\n\n{whole}\n\n{slices}\n\nFor mmap, 'MiB read' counts the "
            "4 KiB pages the slice touches (kernel read-ahead adds more)."
        )
        print(text)
        if not args.no_docs:
            write_section("bench_local", "Local directory store vs numpy", text)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
