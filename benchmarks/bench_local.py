"""Local directory store vs np.save / np.load (and np.load(mmap_mode="r") for slices).

A 1 GiB float32 array (16384 x 16384) on the same disk, in the same run. The page cache
decides what a local benchmark measures, so each figure is taken in a stated cache regime:

- write, buffered: dirty pages flushed first (``os.sync``), then the write into the page cache;
- write, durable: the write and its ``fsync`` (ccstore's ``fsync=True``), bound by the disk;
- read, warm: the file is in the page cache (read once, untimed, just before);
- read, cold: the file evicted from the page cache first (``posix_fadvise(DONTNEED)``).

Uncompressed, zstd and blosc (ccstore's preset: zstd level 1 on bit-shuffled items), each
codec on two data sets: "measured" (a smooth field plus quantised noise, which compresses
little, like most measurements) and "counts" (Poisson event counts stored as float32, which
compress well). Row, column and 100-point slices, warm and cold. Every
measurement runs in a fresh process; the cases take turns, ``--runs`` rounds, and each figure
is the median. Prints the tables and writes them into docs/benchmarks.md.

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
from harness import interleaved, table, timed
from report import write_section

ME = "bench_local"
DATASETS = ("measured", "counts")


def make_source(path: Path, side: int, kind: str = "measured") -> None:
    """Write the benchmark array to ``path`` (.npy): "measured" or "counts" (see module doc)."""
    rows = np.sin(np.arange(side, dtype=np.float32) / 300)
    cols = np.cos(np.arange(side, dtype=np.float32) / 700)
    field = np.add.outer(rows, cols)
    rng = np.random.default_rng(0)
    if kind == "measured":
        field += rng.integers(-8, 8, field.shape).astype(np.float32) / 64
    else:
        field = rng.poisson(np.exp(field)).astype(np.float32)
    np.save(path, field)


def _selection(which: str, side: int):
    if which == "row":
        return (side // 3,)
    if which == "column":
        return (slice(None), side // 3)
    rng = np.random.default_rng(7)
    return rng.integers(0, side, 100), rng.integers(0, side, 100)


def _files(target: str) -> list[str]:
    if os.path.isfile(target):
        return [target]
    return [os.path.join(d, f) for d, _, names in os.walk(target) for f in names]


def _set_cache(target: str, cache: str) -> None:
    """Make ``target`` (a file or a store directory) warm or cold in the page cache."""
    os.sync()  # clean pages only: DONTNEED cannot drop dirty ones
    for path in _files(target):
        fd = os.open(path, os.O_RDONLY)
        try:
            if cache == "cold":
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            else:
                while os.read(fd, 16 << 20):
                    pass
        finally:
            os.close(fd)


# -- operations, each run in a fresh process; they return (seconds, extra) ----------------
# Every write goes to a new file or directory, as ccstore's own writes do (temporary file,
# then rename): overwriting in place would let np.save recycle the old file's page cache.


def write_numpy(source: str, target: str, durable: bool):
    array = np.load(source)
    fresh = f"{target}.{uuid.uuid4().hex}.npy"
    os.sync()

    def save() -> None:
        with open(fresh, "wb") as f:
            np.save(f, array)
            if durable:
                f.flush()
                os.fsync(f.fileno())

    seconds = timed(save)[0]
    os.replace(fresh, target)
    return seconds, {}


def write_ccstore(source: str, target: str, compression: str | None, durable: bool):
    import ccstore

    array = np.load(source)
    fresh = f"{target}.{uuid.uuid4().hex}"
    store = ccstore.open(fresh, compression=compression, fsync=durable)
    os.sync()
    seconds, _ = timed(lambda: store.__setitem__("a", array))
    stored = store.info("a").size
    shutil.rmtree(target, ignore_errors=True)
    os.replace(fresh, target)
    return seconds, {"stored": stored}


def read_numpy(target: str, cache: str):
    _set_cache(target, cache)
    seconds, array = timed(lambda: np.load(target))
    return seconds, {"bytes_read": array.nbytes}


def read_ccstore(target: str, cache: str):
    import ccstore

    _set_cache(target, cache)
    store = ccstore.open(target)
    seconds, _ = timed(lambda: store.load("a"))
    return seconds, {"bytes_read": store.stats.bytes_read, "requests": store.stats.requests}


def slice_mmap(target: str, which: str, side: int, cache: str):
    _set_cache(target, cache)
    selection = _selection(which, side)
    seconds, _ = timed(lambda: np.array(np.load(target, mmap_mode="r")[selection]))
    return seconds, {}


def slice_ccstore(target: str, which: str, side: int, cache: str):
    import ccstore

    _set_cache(target, cache)
    store = ccstore.open(target)
    selection = _selection(which, side)
    seconds, _ = timed(lambda: store["a"][selection])
    return seconds, {"bytes_read": store.stats.bytes_read, "requests": store.stats.requests}


# -- the run --------------------------------------------------------------------------------


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


METHODS = {  # label: (compression, data set)
    "numpy": (None, "measured"),
    "ccstore": (None, "measured"),
    "ccstore zstd, measured": ("zstd", "measured"),
    "ccstore zstd, counts": ("zstd", "counts"),
    "ccstore blosc, measured": ("blosc", "measured"),
    "ccstore blosc, counts": ("blosc", "counts"),
}


def _whole(work: Path, sources: dict[str, Path], nbytes: int, runs: int) -> tuple[str, dict]:
    targets = {label: str(work / label.replace(" ", "_").replace(",", "")) for label in METHODS}
    targets["numpy"] += ".npy"
    cases = {}
    for regime, durable in (("buffered", False), ("durable", True)):
        for label, (codec, data) in METHODS.items():
            kwargs = {"source": str(sources[data]), "target": targets[label], "durable": durable}
            if label == "numpy":
                cases["write", regime, label] = (f"{ME}:write_numpy", kwargs)
            else:
                cases["write", regime, label] = (
                    f"{ME}:write_ccstore",
                    kwargs | {"compression": codec},
                )
    writes = interleaved(runs, cases)
    cases = {}
    for cache in ("warm", "cold"):
        for label in METHODS:
            op = "read_numpy" if label == "numpy" else "read_ccstore"
            cases["read", cache, label] = (f"{ME}:{op}", {"target": targets[label], "cache": cache})
    reads = interleaved(runs, cases)
    rows, ratios = [], {}
    for (op, regime, label), r in (writes | reads).items():
        reference = (writes | reads)[op, regime, "numpy"]
        ratio = r.seconds / reference.seconds
        ratios[op, regime, label] = ratio
        stored = r.extra.get("stored")
        rows.append(
            [
                f"{op}, {regime}",
                label + (f" ({_mib(stored)} MiB stored)" if stored else ""),
                f"{nbytes / r.seconds / 2**20:,.0f}",
                f"{ratio:.2f}x",
                _mib(r.peak_rss - r.baseline_rss),
                f"{r.extra['spread']:.0%}",
            ]
        )
    headers = ["operation", "method", "MiB/s", "time vs numpy", "RSS growth (MiB)", "spread"]
    return table(headers, rows), ratios


def _slices(work: Path, side: int, runs: int) -> str:
    targets = {
        "np.load(mmap_mode='r')": str(work / "numpy.npy"),
        "ccstore": str(work / "ccstore"),
        "ccstore zstd": str(work / "ccstore_zstd_measured"),
    }
    cases = {}
    for cache in ("warm", "cold"):
        for which in ("row", "column", "points"):
            for label, target in targets.items():
                op = "slice_mmap" if label.startswith("np.") else "slice_ccstore"
                kwargs = {"target": target, "which": which, "side": side, "cache": cache}
                cases[which, cache, label] = (f"{ME}:{op}", kwargs)
    results = interleaved(runs, cases)
    rows = []
    for (which, cache, label), r in results.items():
        reference = results[which, cache, "np.load(mmap_mode='r')"]
        rows.append(
            [
                f"{which}, {cache}",
                label,
                f"{r.seconds * 1e3:,.1f}",
                f"{r.seconds / reference.seconds:.2f}x",
                _mib(r.extra["bytes_read"]) if "bytes_read" in r.extra else "",
                r.extra.get("requests", "page faults"),
            ]
        )
    return table(["slice", "method", "ms", "time vs mmap", "MiB read", "requests"], rows)


def _verdict(ratios: dict) -> str:
    lines = []
    for op, regimes in (("write", ("buffered", "durable")), ("read", ("warm", "cold"))):
        for regime in regimes:
            raw = ratios[op, regime, "ccstore"]
            zstd = ratios[op, regime, "ccstore zstd, counts"]
            blosc = ratios[op, regime, "ccstore blosc, counts"]
            lines.append(
                f"- {op}, {regime}: uncompressed {raw:.2f}x numpy's time "
                f"({'within' if raw <= 1.25 else 'outside'} the 1.25x target); on "
                f"compressible data zstd {zstd:.2f}x ({'faster' if zstd < 1 else 'not faster'}), "
                f"blosc {blosc:.2f}x ({'faster' if blosc < 1 else 'not faster'})"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--side", type=int, default=16384)
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ccstore-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        sources = {kind: work / f"source-{kind}.npy" for kind in DATASETS}
        for kind, path in sources.items():
            make_source(path, args.side, kind)
        nbytes = args.side**2 * 4
        whole, ratios = _whole(work, sources, nbytes, args.runs)
        slices = _slices(work, args.side, args.runs)
        size = f"{args.side * args.side * 4 / 2**30:g} GiB float32 ({args.side} x {args.side})"
        text = (
            f"{size}, local disk, median of {args.runs} fresh-process runs taken in turns. "
            "Times are relative to numpy in the same regime (lower is better; below 1.00x is "
            "faster than numpy). Regimes: *buffered* writes start with no dirty pages and end "
            "in the page cache; *durable* writes include fsync; *warm* reads come from the "
            "page cache, *cold* reads from the disk (file evicted first). 'RSS growth' is the "
            "process's peak RSS over its RSS before the timed call: the result or source "
            f"array ({nbytes / 2**20:,.0f} MiB) plus working memory.\n\n"
            f"{whole}\n\n{_verdict(ratios)}\n\n{slices}\n\n"
            "Chunked storage reads whole chunks (4 MiB each by default) when compressed, and "
            "only the 64 KiB pages a slice touches when not (a row of a square chunk is one "
            "page); a warm mmap touches single 4 KiB memory pages, while from a cold disk a "
            "column costs mmap one read per row."
        )
        print(text)
        if not args.no_docs:
            write_section(ME, "Local directory store vs numpy", text)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
