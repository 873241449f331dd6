"""ccstore vs cottoncandy 0.4.0, s3fs + numpy, obstore, plain boto3 and zarr on one S3 server.

Same server, same run: a large float32 array (default 1 GiB) up and down, a row, a column and
100 random elements of it, many small 4 KiB arrays put and get (one at a time, and as a batch
with each library's way of keeping several in flight), and a listing of their keys.
zarr runs twice, as ``FsspecStore`` over s3fs and ``ObjectStore`` over obstore, storing the
large array as ccstore does (ccstore's chunk shape, uncompressed); a zarr array is no store of
small objects, so the zarr peers run the large-array workloads only (a library runs the
workloads it has an operation for, see s3_peers.operation).
Every measurement runs in a fresh process (peers with conflicting pins in their own virtualenv,
see envs.py) behind a counting proxy, so requests and bytes on the wire are measured, not
estimated. The machine's physical references (loopback TCP, memcpy, first-touch fill) are
measured first. Writes a table and a plot into docs/benchmarks.md and docs/img/.

    python benchmarks/bench_s3.py                 # starts Ceph RGW (falls back to moto)
    python benchmarks/bench_s3.py --server moto --mib 256 --small 1000
    python benchmarks/bench_s3.py --endpoint https://s3.example.org   # your own endpoint
    python benchmarks/bench_s3.py --latency-ms 20   # a cloud-like round trip per request
    python benchmarks/bench_s3.py --latency-ms 20 --bandwidth-mbps 1000   # and a 1 Gbit/s link

``--latency-ms`` sends every workload through the proxy, which sleeps that long before
forwarding each request: one added round trip per request, as a cloud region adds.
``--bandwidth-mbps`` caps the bodies through the proxy at that many megabits per second in
each direction, shared by all connections, as one network link is. An https endpoint cannot
pass the (plain http) counting proxy: its requests are not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import envs  # noqa: E402
import s3_peers  # noqa: E402
from harness import physical_references, table  # noqa: E402
from report import write_section  # noqa: E402
from s3_peers import CONCURRENCY, LIBRARIES, POINTS, expected_digests  # noqa: E402

ENV_OF = {
    "ccstore": None,
    "cottoncandy": "cottoncandy",
    "s3fs": "peers",
    "obstore": "peers",
    "boto3": "peers",
    "zarr_fsspec": "peers",
    "zarr_obstore": "peers",
}
NAMES = {"zarr_fsspec": "zarr + FsspecStore", "zarr_obstore": "zarr + ObjectStore"}
BATCH_NOTE = (
    "ccstore `update` and `load_many`, s3fs `pipe` and `cat`, boto3 one client on a thread "
    "pool, obstore `put_async` and `get_async` gathered; cottoncandy has no batch call"
)
ZARR_NOTE = (
    "zarr: the large array only, one object per chunk of ccstore's chunk shape, uncompressed. "
)


def start_server(name: str):
    import s3_servers

    base = Path(tempfile.mkdtemp(prefix="ccstore-bench-s3-"))
    # Ceph keeps overwritten objects until its garbage collection runs: with the RAM-backed
    # memstore (6 GB) a full run filled the OSD, which then stalled every write. Keep the data
    # on disk unless told otherwise. Its block file takes ~20 GB: removed again on stop.
    os.environ.setdefault("CEPH_OBJECTSTORE", "bluestore")
    start = s3_servers.SERVERS[name]
    endpoint, stop_server = start() if name == "moto" else start(base)

    def stop() -> None:
        try:
            stop_server()
        finally:
            shutil.rmtree(base, ignore_errors=True)

    return endpoint, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="ceph", help="moto, ceph or seaweedfs")
    parser.add_argument("--endpoint", help="benchmark this endpoint instead of starting a server")
    parser.add_argument("--mib", type=int, default=1024, help="large array size (MiB)")
    parser.add_argument("--small", type=int, default=10_000, help="number of 4 KiB arrays")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument(
        "--bucket", help="an existing bucket to use (objects go below a fresh prefix in it)"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added per request")
    parser.add_argument(
        "--bandwidth-mbps", type=float, default=0.0, help="link cap, each direction (Mbit/s)"
    )
    parser.add_argument(
        "--reference-mib",
        type=int,
        default=1024,
        help="size of the physical reference measurements (MiB)",
    )
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    if not args.no_docs and importlib.util.find_spec("matplotlib") is None:
        parser.error(
            "the docs section gets a plot, which needs matplotlib: "
            "pip install -e '.[bench]', or pass --no-docs"
        )
    args.run_prefix = f"ccstore-bench-{uuid.uuid4().hex[:8]}/" if args.bucket else ""
    args.shaped = bool(args.latency_ms or args.bandwidth_mbps)
    if args.endpoint and args.endpoint.startswith("https:") and args.shaped:
        parser.error("--latency-ms and --bandwidth-mbps need the proxy, which speaks http only")
    libraries = args.libraries.split(",")
    references = physical_references(args.reference_mib << 20)
    print(reference_text(references, args.reference_mib), flush=True)

    import boto3
    from faultproxy import FaultProxy

    stop = None
    if args.endpoint:
        upstream, server = args.endpoint, "your endpoint"
    else:
        endpoint, stop = start_server(args.server)
        upstream, server = endpoint.endpoint_url, f"{args.server} on 127.0.0.1"
        # every measurement process finds the server's keys through boto3's standard chain
        os.environ["AWS_ACCESS_KEY_ID"] = endpoint.access_key
        os.environ["AWS_SECRET_ACCESS_KEY"] = endpoint.secret_key
    try:
        with contextlib.ExitStack() as stack:
            proxy = None
            if upstream.startswith("http:"):
                bandwidth = args.bandwidth_mbps * 1e6 / 8 or None
                proxy = stack.enter_context(
                    FaultProxy(upstream, latency=args.latency_ms / 1e3, bandwidth=bandwidth)
                )
            bucket = args.bucket or f"bench-{uuid.uuid4().hex[:12]}"
            if not args.bucket:
                boto3.client("s3", endpoint_url=upstream, region_name="us-east-1").create_bucket(
                    Bucket=bucket
                )
            rows = run(proxy, upstream, bucket, libraries, args)
    finally:
        if stop is not None:
            stop()
    report(rows, server, args, references)


def run(proxy, direct: str, bucket: str, libraries: list[str], args) -> list[dict]:
    """Large transfers are timed straight to the server (a Python proxy would cap them) and
    counted in one more run through the proxy; small objects, partial reads and the listing go
    through the proxy for every library alike. With added latency or a bandwidth cap
    everything goes through the proxy; without a proxy (https) nothing is counted. Partial
    reads are checked against the array every library uploaded, listings against the number
    of small objects.

    Workloads run one after the other, and within a workload the libraries take turns run
    by run, so that a slow stretch of this shared machine falls on every library of a
    workload rather than on whichever ran during it."""
    from harness import measure, median_result

    nbytes = args.mib << 20
    side = math.isqrt(nbytes // 4)  # the shape s3_peers._array gives the large array
    shape = [nbytes // 4 // side, side]
    expected = expected_digests(nbytes, shape)
    pythons = {lib: envs.python_for(ENV_OF[lib]) if ENV_OF[lib] else None for lib in libraries}

    def large(library: str) -> dict:
        return {"bucket": bucket, "key": f"{args.run_prefix}{library}/large", "nbytes": nbytes}

    def small(library: str) -> dict:
        prefix = f"{args.run_prefix}{library}/small"
        return {"bucket": bucket, "prefix": prefix, "count": args.small}

    def batch(library: str) -> dict:
        return small(library) | {"prefix": f"{args.run_prefix}{library}/batch"}

    def sliced(library: str) -> dict:
        return large(library) | {"shape": shape}

    rows = []
    for workload, op, params_of, runs, timed_direct in (
        ("upload", "upload", large, args.runs, True),
        ("download", "download", large, args.runs, True),
        ("row", "row", sliced, args.runs, False),
        ("column", "column", sliced, args.runs, False),
        ("points", "points", sliced, args.runs, False),
        ("small put", "small_put", small, 1, False),
        ("small get", "small_get", small, 1, False),
        ("list", "list", small, args.runs, False),  # lists what small put wrote
        ("small put, batch", "small_put_batch", batch, 1, False),
        ("small get, batch", "small_get_batch", batch, 1, False),
    ):
        operations = {lib: s3_peers.operation(lib, op) for lib in libraries}
        taking_part = [lib for lib in libraries if operations[lib] is not None]
        # timed straight to the server: only the counting run goes through the proxy
        counted = proxy is not None and not timed_direct
        endpoint = direct if proxy is None or (timed_direct and not args.shaped) else proxy.url
        results: dict[str, list] = {lib: [] for lib in taking_part}
        wire = {lib: None for lib in taking_part}
        for _ in range(runs):
            for lib in taking_part:
                before = proxy.stats.snapshot() if counted else None
                results[lib].append(
                    measure(operations[lib], pythons[lib], endpoint=endpoint, **params_of(lib))
                )
                if counted:
                    used = proxy.stats.snapshot() - before
                    wire[lib] = used if wire[lib] is None else wire[lib] + used
        for lib in taking_part:
            result, counted_runs = median_result(results[lib]), runs
            if proxy is not None and timed_direct:
                before = proxy.stats.snapshot()
                params = params_of(lib)
                measure(operations[lib], pythons[lib], endpoint=proxy.url, warm=False, **params)
                wire[lib], counted_runs = proxy.stats.snapshot() - before, 1
            if op in expected and result.extra.get("digest") != expected[op]:
                raise AssertionError(f"{lib} {workload}: values differ from the array")
            used = wire[lib]
            requests = used.requests / counted_runs if used else math.nan
            wire_bytes = (used.bytes_in + used.bytes_out) / counted_runs if used else math.nan
            rows.append(
                {
                    "library": lib,
                    "workload": workload,
                    "seconds": result.seconds,
                    "rss": result.peak_rss - result.baseline_rss,
                    "requests": requests,
                    "bytes": wire_bytes,
                    "nbytes": nbytes,
                    "count": args.small,
                }
            )
            print(
                f"{lib:12s} {workload:10s} {result.seconds:8.3f} s  {requests:8.0f} requests",
                flush=True,
            )
    return rows


def reference_text(references: dict[str, float], mib: int) -> str:
    return (
        f"Physical references on this machine ({mib:,} MiB, best of 3 in a fresh process): "
        f"loopback TCP {references['loopback_tcp']:,.0f} MiB/s (one connection on 127.0.0.1, "
        f"8 MiB sends, `recv_into` a touched buffer), memcpy into touched memory "
        f"{references['memcpy']:,.0f} MiB/s, first-touch fill {references['first_touch']:,.0f} "
        f"MiB/s (`np.empty` filled once: page faults)."
    )


def report(rows: list[dict], server: str, args, references: dict[str, float]) -> None:
    best = {}
    for r in rows:
        if r["library"] == "ccstore":
            best[r["workload"]] = r["seconds"]
    lines = []
    for r in rows:
        ratio = r["seconds"] / best[r["workload"]] if r["workload"] in best else math.nan
        if r["workload"] in ("upload", "download"):
            rate = f"{r['nbytes'] / r['seconds'] / 2**20:,.0f} MiB/s"
        elif r["workload"] in ("row", "column", "points"):
            rate = f"{r['seconds'] * 1e3:,.1f} ms"
        elif r["workload"] == "list":
            rate = f"{r['count'] / r['seconds']:,.0f} keys/s"
        else:
            rate = f"{r['count'] / r['seconds']:,.0f} objects/s"
        per = r["requests"] / r["count"] if r["workload"].startswith("small") else r["requests"]
        lines.append(
            [
                r["workload"],
                NAMES.get(r["library"], r["library"]),
                rate,
                "—" if math.isnan(ratio) else f"{ratio:.2f}x",
                f"{r['rss'] / 2**20:,.0f}",
                "—" if math.isnan(per) else f"{per:,.1f}",
                "—" if math.isnan(r["bytes"]) else f"{r['bytes'] / 2**20:,.2f}",
            ]
        )
    lines.sort(key=lambda line: (line[0], line[1] != "ccstore"))
    if args.shaped:
        how = (
            f"Every request goes through a proxy on 127.0.0.1 that adds {args.latency_ms:g} ms "
            "before forwarding it"
            + (
                f", caps bodies at {args.bandwidth_mbps:g} Mbit/s each way (one shared link)"
                if args.bandwidth_mbps
                else ""
            )
            + " and counts requests and bytes."
        )
    else:
        how = (
            "Requests and bytes counted by a proxy on 127.0.0.1 (large transfers timed "
            "without it, as it would cap them)."
        )
    zarr_note = ZARR_NOTE if any(r["library"].startswith("zarr") for r in rows) else ""
    text = (
        f"Server: {server}. {how} Large array: {args.mib} MiB "
        f"float32; small: {args.small} x 4 KiB arrays, one at a time, then as a batch with "
        f"{CONCURRENCY} in flight ({BATCH_NOTE}); row, column: one row, "
        f"one column of the large array; points: {POINTS} random elements of it (seeded, the "
        f"same for every library); list: the keys of the small objects. {zarr_note}Time "
        f"ratio = library time / ccstore time (> 1: ccstore faster); median of {args.runs} "
        f"fresh-process runs for the large array and the listing, 1 for small puts and gets; "
        f"within a workload the libraries take turns, run by run. "
        f"{reference_text(references, args.reference_mib)}\n\n"
        + table(
            [
                "workload",
                "library",
                "throughput",
                "time vs ccstore",
                "peak RSS above start (MiB)",
                "requests (per object for small)",
                "MiB on the wire",
            ],
            lines,
        )
    )
    print(text)
    if not args.no_docs:
        # a run with added latency gets its own section and plot beside the loopback one
        name = "bench_s3"
        if args.latency_ms:
            name += f"_latency{args.latency_ms:g}ms"
        if args.bandwidth_mbps:
            name += f"_{args.bandwidth_mbps:g}mbps"
        plot(rows, HERE.parent / "docs" / "img" / f"{name}.png")
        peers = [NAMES.get(lib, lib) for lib in dict.fromkeys(r["library"] for r in rows)]
        title = "S3: ccstore vs " + ", ".join(lib for lib in peers if lib != "ccstore")
        if args.latency_ms:
            title += f", {args.latency_ms:g} ms added per request"
        if args.bandwidth_mbps:
            title += f", {args.bandwidth_mbps:g} Mbit/s link"
        write_section(
            name,
            title,
            text + f"\n\n![S3 benchmark](img/{name}.png)",
            command="python benchmarks/bench_s3.py " + " ".join(sys.argv[1:]),
        )


_SLICES = ("row", "column", "points")  # plotted as times (lower is better), on a log scale


def _plotted(row: dict) -> float:
    """What a bar shows: ms for partial reads, MiB/s for large transfers, else items/s."""
    if row["workload"] in _SLICES:
        return row["seconds"] * 1e3
    if row["workload"] in ("upload", "download"):
        return row["nbytes"] / row["seconds"] / 2**20
    return row["count"] / row["seconds"]


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = [
        "upload",
        "download",
        "small put",
        "small get",
        "small put, batch",
        "small get, batch",
        "list",
        "row",
        "column",
        "points",
    ]
    units = {"upload": "MiB/s", "download": "MiB/s", "list": "keys/s"}
    ran_any = [w for w in workloads if any(r["workload"] == w for r in rows)]
    columns = 5
    nrows = -(-len(ran_any) // columns)
    fig, axes = plt.subplots(nrows, columns, figsize=(4 * columns, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[len(ran_any) :]:
        ax.set_visible(False)
    for ax, workload in zip(axes.flat, ran_any):
        ran = [r for r in rows if r["workload"] == workload]  # zarr has no small objects
        ax.bar(
            [NAMES.get(r["library"], r["library"]) for r in ran],
            [_plotted(r) for r in ran],
            color=["#d62728" if r["library"] == "ccstore" else "#7f7f7f" for r in ran],
        )
        if workload in _SLICES:
            ax.set_yscale("log")
            ax.set_title(f"{workload} (lower is better)")
            ax.set_ylabel("ms")
        else:
            ax.set_title(workload)
            ax.set_ylabel(units.get(workload, "objects/s"))
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
