"""Run one of ccstore's benchmarks: ``python -m benchmarks NAME [options]`` from a checkout.

    python -m benchmarks s3 --endpoint https://s3.example.org --latency-ms 0   # your endpoint
    python -m benchmarks s3                  # starts Ceph RGW on 127.0.0.1 (falls back to moto)
    python -m benchmarks local | zarr | encryption | gdrive
    python -m benchmarks NAME --help         # the options of one benchmark

Each prints its table; add ``--no-docs`` to leave docs/benchmarks.md alone.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCHMARKS = {
    "s3": "bench_s3",
    "zarr": "bench_zarr",
    "local": "bench_local",
    "encryption": "bench_encryption",
    "gdrive": "bench_gdrive",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BENCHMARKS:
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here), str(here.parent / "tests")]
    module = importlib.import_module(BENCHMARKS[argv[0]])
    sys.argv = [f"python -m benchmarks {argv[0]}", *argv[1:]]
    module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
