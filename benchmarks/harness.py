"""Benchmark plumbing: run a measurement in a fresh process, take medians, print tables.

Each measurement runs in its own fresh process (optionally another interpreter, so peers
with conflicting pins get their own virtualenv) so its peak RSS is its own, and the parent
aggregates the median of several runs. Figures are reported as ratios to a reference
in the same run: absolute times on shared machines are noise.
"""

from __future__ import annotations

import importlib
import json
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Result",
    "interleaved",
    "measure",
    "median_of",
    "peak_rss",
    "physical_references",
    "table",
    "timed",
]


def peak_rss() -> int:
    """Peak resident set size of this process image, in bytes.

    VmHWM, not getrusage's ru_maxrss: the latter survives exec, so a child would report the
    peak of the parent it was forked from.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


@dataclass
class Result:
    """One measured operation: seconds, peak RSS and anything else the operation reports."""

    seconds: float
    peak_rss: int
    baseline_rss: int
    extra: dict[str, Any] = field(default_factory=dict)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def _run(operation: str, kwargs: dict[str, Any]) -> Result:
    module_name, _, name = operation.partition(":")
    fn = getattr(importlib.import_module(module_name), name)
    baseline = current_rss()
    seconds, extra = fn(**kwargs)
    return Result(seconds, peak_rss(), baseline, extra or {})


_CHILD = """
import json, sys
sys.path.insert(0, {here!r})
from dataclasses import asdict
from harness import _run
result = _run({operation!r}, json.loads(sys.stdin.read()))
print("RESULT " + json.dumps(asdict(result)))
"""


def measure(operation: str, python: str | None = None, **kwargs: Any) -> Result:
    """Run ``module:function(**kwargs)`` in a fresh process of ``python`` (default: this one).

    The function returns (seconds, extra); ``extra`` must be JSON-able.
    """
    code = _CHILD.format(here=str(Path(__file__).parent), operation=operation)
    proc = subprocess.run(
        [python or sys.executable, "-c", code],
        input=json.dumps(kwargs),
        text=True,
        capture_output=True,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{operation} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return Result(**json.loads(lines[-1][len("RESULT ") :]))


def median_of(runs: int, operation: str, python: str | None = None, **kwargs: Any) -> Result:
    """The run with the median time out of ``runs`` fresh-process runs (peak RSS: the max)."""
    return median_result([measure(operation, python, **kwargs) for _ in range(runs)])


def median_result(results: list[Result]) -> Result:
    """The median-time result, with the max peak RSS and the relative spread of the times."""
    results = sorted(results, key=lambda r: r.seconds)
    middle = results[len(results) // 2]
    middle.peak_rss = max(r.peak_rss for r in results)
    middle.extra["spread"] = (results[-1].seconds - results[0].seconds) / max(
        statistics.median(r.seconds for r in results), 1e-9
    )
    return middle


def interleaved(
    runs: int, cases: dict[Any, tuple[str, dict[str, Any]]], python: str | None = None
) -> dict[Any, Result]:
    """The median run of every case, running the cases in turn ``runs`` times over.

    ``cases`` maps a label to ``(operation, kwargs)`` for :func:`measure`. Taking turns spreads
    slow drifts of a shared machine (other tenants, writeback of earlier runs) over every case
    instead of charging them to whichever ran during them. Peak RSS is the max over runs.
    """
    results: dict[Any, list[Result]] = {label: [] for label in cases}
    for _ in range(runs):
        for label, (operation, kwargs) in cases.items():
            results[label].append(measure(operation, python, **kwargs))
    return {label: median_result(rs) for label, rs in results.items()}


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    cells = [[str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def physical_references(nbytes: int = 1 << 30, repeat: int = 3) -> dict[str, float]:
    """This machine's physical limits in MiB/s, measured in a fresh process (best of ``repeat``).

    ``loopback_tcp``: ``nbytes`` sent over one TCP connection on 127.0.0.1 in 8 MiB pieces,
    received with ``recv_into`` into a preallocated, already touched buffer;
    ``memcpy``: ``np.copyto`` of ``nbytes`` into an already touched array;
    ``first_touch``: ``np.empty(nbytes)`` filled once, bound by page faults.
    """
    return measure("harness:_references", nbytes=nbytes, repeat=repeat).extra


def _references(nbytes: int, repeat: int) -> tuple[float, dict[str, float]]:
    import numpy as np

    def rate(seconds: list[float]) -> float:
        return nbytes / 2**20 / min(seconds)

    def first_touch() -> None:
        np.empty(nbytes, np.uint8).fill(1)

    source = np.ones(nbytes, np.uint8)
    target = np.zeros(nbytes, np.uint8)
    out = {
        "loopback_tcp": rate([_loopback(source, target) for _ in range(repeat)]),
        "memcpy": rate([timed(lambda: np.copyto(target, source))[0] for _ in range(repeat)]),
        "first_touch": rate([timed(first_touch)[0] for _ in range(repeat)]),
    }
    return 0.0, out


def _loopback(source: Any, target: Any, piece: int = 8 << 20) -> float:
    """Seconds to send ``source`` into ``target`` over one TCP connection on 127.0.0.1."""
    send_view, receive_view = memoryview(source).cast("B"), memoryview(target).cast("B")
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as sender,
    ):
        receiver, _ = server.accept()
        with receiver:

            def send() -> None:
                for start in range(0, len(send_view), piece):
                    sender.sendall(send_view[start : start + piece])

            thread = threading.Thread(target=send)
            t0 = time.perf_counter()
            thread.start()
            received = 0
            while received < len(receive_view):
                n = receiver.recv_into(receive_view[received : received + piece])
                if not n:
                    raise ConnectionError("the loopback connection closed early")
                received += n
            seconds = time.perf_counter() - t0
            thread.join()
    return seconds
