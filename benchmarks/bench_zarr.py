"""zarr on S3 through ccstore's adapter vs zarr's FsspecStore (s3fs) and ObjectStore (obstore).

Same server, same run: write and read a float32 zarr array (default 1 GiB), unsharded and
sharded, zstd-compressed. No store hashes request bodies into signatures (see s3_peers: the
link is loopback http; over https none needs to). Times are medians of fresh-process runs
straight to the server; requests are counted in one more run through the counting proxy.
Writes a table into docs/benchmarks.md.

    python benchmarks/bench_zarr.py [--server ceph|moto|seaweedfs] [--mib 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

REGION = "us-east-1"
STORES = ("ccstore", "fsspec", "obstore")
LAYOUTS = {"unsharded": None, "sharded": (8192, 8192)}


def _store(kind: str, endpoint: str, bucket: str, path: str, read_only: bool):
    if kind == "ccstore":
        import ccstore

        return ccstore.ZarrStore(
            f"s3://{bucket}/{path}",
            endpoint_url=endpoint,
            region=REGION,
            read_only=read_only,
            concurrency=16,
            payload_signing=False,
        )
    from s3_peers_zarr import zarr_store  # the stores bench_s3's zarr peers use

    return zarr_store(kind, endpoint, bucket, path, read_only)


def write(kind: str, endpoint: str, bucket: str, path: str, mib: int, shards: list | None):
    import numpy as np
    import zarr

    side = int(((mib << 20) // 4) ** 0.5)
    data = np.random.default_rng(0).standard_normal((side, side), dtype=np.float32).round(2)
    store = _store(kind, endpoint, bucket, path, read_only=False)
    array = zarr.create_array(
        store,
        shape=data.shape,
        dtype=data.dtype,
        chunks=(1024, 1024),
        shards=tuple(shards) if shards else None,
        compressors=zarr.codecs.ZstdCodec(level=1),
        overwrite=True,
    )
    t0 = time.perf_counter()
    array[:] = data
    return time.perf_counter() - t0, {}


def read(kind: str, endpoint: str, bucket: str, path: str, mib: int, shards: list | None):
    import zarr

    store = _store(kind, endpoint, bucket, path, read_only=True)
    t0 = time.perf_counter()
    data = zarr.open_array(store, mode="r")[:]
    seconds = time.perf_counter() - t0
    assert data.nbytes > 0
    return seconds, {}


def main() -> None:
    import boto3
    import envs
    from bench_s3 import start_server
    from faultproxy import FaultProxy
    from harness import measure, median_of, table
    from report import write_section

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="ceph")
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    endpoint, stop = start_server(args.server)
    os.environ["AWS_ACCESS_KEY_ID"] = endpoint.access_key
    os.environ["AWS_SECRET_ACCESS_KEY"] = endpoint.secret_key
    python = envs.python_for("peers")  # zarr, s3fs, obstore and ccstore side by side
    rows, results = [], {}
    try:
        bucket = f"zbench-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=endpoint.endpoint_url, region_name=REGION).create_bucket(
            Bucket=bucket
        )
        with FaultProxy(endpoint.endpoint_url) as proxy:
            for layout, shards in LAYOUTS.items():
                for kind in STORES:
                    params = {
                        "bucket": bucket,
                        "path": f"{kind}-{layout}",
                        "mib": args.mib,
                        "shards": list(shards) if shards else None,
                    }
                    for op in ("write", "read"):
                        operation = f"bench_zarr:{op}"
                        result = median_of(
                            args.runs,
                            operation,
                            python,
                            kind=kind,
                            endpoint=endpoint.endpoint_url,
                            **params,
                        )
                        before = proxy.stats.snapshot()
                        measure(operation, python, kind=kind, endpoint=proxy.url, **params)
                        wire = proxy.stats.snapshot() - before
                        results[(layout, op, kind)] = result.seconds
                        rows.append([layout, op, kind, result.seconds, wire.requests])
                        print(
                            f"{layout:10s} {op:6s} {kind:8s} {result.seconds:7.2f} s "
                            f"{wire.requests:6d} requests",
                            flush=True,
                        )
    finally:
        stop()
    lines = [
        [
            layout,
            op,
            kind,
            f"{(args.mib / seconds):,.0f} MiB/s",
            f"{seconds / results[(layout, op, 'ccstore')]:.2f}x",
            f"{requests:,}",
        ]
        for layout, op, kind, seconds, requests in rows
    ]
    text = (
        f"Server: {args.server} on 127.0.0.1. A {args.mib} MiB float32 zarr v3 array, "
        "chunks 1024 x 1024, zstd level 1; sharded: shards of 8192 x 8192. Time ratio = "
        "store time / ccstore time (> 1: ccstore faster); median of "
        f"{args.runs} fresh-process runs; requests counted through a proxy in one more run."
        "\n\n"
        + table(
            ["layout", "operation", "store", "throughput", "time vs ccstore", "requests"], lines
        )
    )
    print(text)
    if not args.no_docs:
        write_section("bench_zarr", "zarr on S3: ccstore vs FsspecStore and ObjectStore", text)


if __name__ == "__main__":
    main()
