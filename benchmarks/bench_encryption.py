"""The cost of encryption: encrypted vs unencrypted writes and reads on a local directory store.

A 1 GiB float32 array (16384 x 16384), uncompressed and zstd, written and read whole with and
without ``encryption=``, each measurement in a fresh process (median of ``--runs``). Also
prints this CPU's single-thread AES-256-GCM speed as the reference the overhead comes from.
Writes the table into docs/benchmarks.md.

    python benchmarks/bench_encryption.py [--workdir DIR] [--runs 3] [--side 16384]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_local import make_source
from harness import median_of, table, timed
from report import write_section

KEY = bytes(range(32))  # a fixed benchmark key: nothing secret is stored


def _store(target: str, encrypted: bool, compression: str | None):
    import ccstore

    return ccstore.open(target, compression=compression, encryption=KEY if encrypted else None)


def write(source: str, target: str, encrypted: bool, compression: str | None):
    array = np.load(source)
    fresh = f"{target}-{uuid.uuid4().hex}"  # a new directory: no page cache reuse
    store = _store(fresh, encrypted, compression)
    seconds, _ = timed(lambda: store.__setitem__("a", array))
    stored = store.info("a").size
    shutil.rmtree(target, ignore_errors=True)
    os.replace(fresh, target)
    return seconds, {"stored": stored}


def read(target: str, encrypted: bool, compression: str | None):
    store = _store(target, encrypted, compression)
    seconds, array = timed(lambda: store.load("a"))
    return seconds, {"bytes": array.nbytes}


def aes_gcm_speed(nbytes: int = 256 << 20, chunk: int = 4 << 20) -> float:
    """Single-thread AES-256-GCM encryption speed of this CPU, in bytes per second."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead, data = AESGCM(KEY), os.urandom(chunk)
    aead.encrypt(b"\0" * 12, data, None)  # warm up
    t0 = time.perf_counter()
    for i in range(nbytes // chunk):
        aead.encrypt(i.to_bytes(12, "little"), data, None)
    return nbytes / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--side", type=int, default=16384)
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ccstore-bench-enc-"))
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "source.npy"
    make_source(source, args.side)
    gib = args.side * args.side * 4 / (1 << 30)
    rows, overheads = [], []
    try:
        for compression in (None, "zstd"):
            times = {}
            for encrypted in (False, True):
                target = str(workdir / f"store-{compression}-{encrypted}")
                common = {"target": target, "encrypted": encrypted, "compression": compression}
                w = median_of(args.runs, "bench_encryption:write", source=str(source), **common)
                r = median_of(args.runs, "bench_encryption:read", **common)
                times[encrypted] = (w.seconds, r.seconds)
                label = (
                    f"{'zstd' if compression else 'raw'}, {'encrypted' if encrypted else 'plain'}"
                )
                rows.append(
                    [
                        label,
                        f"{gib / w.seconds * 1024:.0f}",
                        f"{gib / r.seconds * 1024:.0f}",
                        f"{(r.peak_rss - r.baseline_rss) / (1 << 20):.0f}",
                        f"{w.extra['stored'] / (1 << 20):.0f}",
                        f"{max(w.extra['spread'], r.extra['spread']):.0%}",
                    ]
                )
            name = "zstd" if compression else "raw"
            for op, i in (("write", 0), ("read", 1)):
                ratio = times[True][i] / times[False][i]
                overheads.append([f"{name} {op}", f"{ratio:.2f}x", f"{ratio - 1:+.0%}"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    aes = aes_gcm_speed() / (1 << 20)
    body = "\n".join(
        [
            f"{gib:.0f} GiB float32 array on a local directory store, median of {args.runs} "
            f"fresh processes per cell. This CPU encrypts AES-256-GCM at {aes:.0f} MiB/s on "
            "one thread (AES-NI).",
            "",
            table(
                ["case", "write MiB/s", "read MiB/s", "read peak RSS over baseline (MiB)",
                 "stored MiB", "spread"],
                rows,
            ),
            "",
            "Encrypted time over plain time, same run:",
            "",
            table(["operation", "encrypted / plain", "overhead"], overheads),
        ]
    )  # fmt: skip
    print(body)
    write_section("bench_encryption", "Encryption overhead (`bench_encryption.py`)", body)


if __name__ == "__main__":
    main()
