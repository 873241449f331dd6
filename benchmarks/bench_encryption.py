"""The cost of encryption: encrypted vs unencrypted writes and reads on a local directory store.

A 1 GiB float32 array (16384 x 16384), uncompressed and zstd, written and read whole with and
without ``encryption=``. Writes are measured *buffered* (no dirty pages before, ending in the
page cache: CPU-bound, where encryption costs most) and, uncompressed, *durable* (with fsync:
bound by the disk, as real workloads are); reads come from the page cache. Each case runs in a
fresh process, cases take turns, ``--runs`` rounds, medians. Every case runs under two
environments: this interpreter (the test environment: ``ccstore[all]``, whose pydrive2 pins
cryptography < 44, which holds the GIL while encrypting) and ``core`` (ccstore alone, newest
cryptography, which releases it). Also prints this CPU's single-thread AES-256-GCM speed.
Writes the tables into docs/benchmarks.md.

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
import envs
from bench_local import make_source
from harness import interleaved, table, timed
from report import write_section

KEY = bytes(range(32))  # a fixed benchmark key: nothing secret is stored


def _store(target: str, encrypted: bool, compression: str | None, durable: bool = False):
    import ccstore

    key = KEY if encrypted else None
    return ccstore.open(target, compression=compression, encryption=key, fsync=durable)


def write(source: str, target: str, encrypted: bool, compression: str | None, durable: bool):
    array = np.load(source)
    fresh = f"{target}-{uuid.uuid4().hex}"  # a new directory: no page cache reuse
    store = _store(fresh, encrypted, compression, durable)
    os.sync()  # start without dirty pages: earlier runs' writeback must not slow this one
    seconds, _ = timed(lambda: store.__setitem__("a", array))
    stored = store.info("a").size
    shutil.rmtree(target, ignore_errors=True)
    os.replace(fresh, target)
    return seconds, {"stored": stored}


def read(target: str, encrypted: bool, compression: str | None):
    store = _store(target, encrypted, compression)
    seconds, array = timed(lambda: store.load("a"))
    import cryptography

    return seconds, {"bytes": array.nbytes, "cryptography": cryptography.__version__}


def aes_gcm_speed(nbytes: int = 256 << 20, chunk: int = 4 << 20) -> float:
    """Single-thread AES-256-GCM encryption speed of this CPU, in bytes per second."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead, data = AESGCM(KEY), os.urandom(chunk)
    aead.encrypt(b"\0" * 12, data, None)  # warm up
    t0 = time.perf_counter()
    for i in range(nbytes // chunk):
        aead.encrypt(i.to_bytes(12, "little"), data, None)
    return nbytes / (time.perf_counter() - t0)


CASES = (  # (label, operation, compression, durable, data set: see bench_local.make_source)
    ("raw write, buffered", "write", None, False, "measured"),
    ("raw write, durable", "write", None, True, "measured"),
    ("raw read, warm", "read", None, False, "measured"),
    ("zstd write, buffered", "write", "zstd", False, "measured"),
    ("zstd read, warm", "read", "zstd", False, "measured"),
    ("zstd write, buffered, counts", "write", "zstd", False, "counts"),
    ("zstd read, warm, counts", "read", "zstd", False, "counts"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--side", type=int, default=16384)
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="ccstore-bench-enc-"))
    workdir.mkdir(parents=True, exist_ok=True)
    sources = {kind: workdir / f"source-{kind}.npy" for kind in ("measured", "counts")}
    for kind, path in sources.items():
        make_source(path, args.side, kind)
    nbytes = args.side * args.side * 4
    pythons = {"test env": sys.executable, "core": envs.python_for("core")}
    rows = []
    try:
        for env, python in pythons.items():
            cases = {}
            for label, op, compression, durable, data in CASES:
                for encrypted in (False, True):
                    name = f"{env}-{compression}-{data}-{encrypted}".replace(" ", "_")
                    target = str(workdir / name)
                    kwargs = {"target": target, "encrypted": encrypted, "compression": compression}
                    if op == "write":
                        kwargs |= {"source": str(sources[data]), "durable": durable}
                    cases[label, encrypted] = (f"bench_encryption:{op}", kwargs)
            results = interleaved(args.runs, cases, python)
            version = next(
                r.extra["cryptography"] for r in results.values() if "cryptography" in r.extra
            )
            for label, *_ in CASES:
                plain, encrypted = results[label, False], results[label, True]
                ratio = encrypted.seconds / plain.seconds
                rows.append(
                    [
                        f"{env} (cryptography {version})",
                        label,
                        f"{nbytes / plain.seconds / 2**20:,.0f}",
                        f"{nbytes / encrypted.seconds / 2**20:,.0f}",
                        f"{ratio:.2f}x",
                        f"{ratio - 1:+.0%}",
                        f"{max(plain.extra['spread'], encrypted.extra['spread']):.0%}",
                    ]
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    aes = aes_gcm_speed() / (1 << 20)
    headers = ["environment", "operation", "plain MiB/s", "encrypted MiB/s",
               "encrypted / plain time", "overhead", "spread"]  # fmt: skip
    body = (
        f"{nbytes / 2**30:g} GiB float32 array on a local directory store, median of "
        f"{args.runs} fresh processes per cell, plain and encrypted cases taking turns. This "
        f"CPU encrypts AES-256-GCM at {aes:,.0f} MiB/s on one thread (AES-NI). *buffered*: "
        "write into the page cache, CPU-bound; *durable*: with fsync, disk-bound; *warm*: "
        "read from the page cache. Data: a smooth field with quantised noise (zstd stores 0.9 of "
        "it), and, where marked, Poisson counts as float32 (zstd stores 0.15).\n\n"
        + table(headers, rows)
    )
    print(body)
    if not args.no_docs:
        write_section("bench_encryption", "Encryption overhead (`bench_encryption.py`)", body)


if __name__ == "__main__":
    main()
