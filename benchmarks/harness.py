"""Benchmark plumbing: run a measurement in a fresh process, take medians, print tables.

Each measurement runs in its own spawned process so its peak RSS is its own, and the
parent aggregates the median of several runs. Figures are reported as ratios to a reference
in the same run: absolute times on shared machines are noise.
"""

from __future__ import annotations

import importlib
import multiprocessing
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Result", "measure", "median_of", "peak_rss", "table", "timed"]


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes (Linux reports KiB)."""
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


def measure(operation: str, **kwargs: Any) -> Result:
    """Run ``module:function(**kwargs)`` in a fresh process; it returns (seconds, extra)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_run, operation, kwargs).result()


def median_of(runs: int, operation: str, **kwargs: Any) -> Result:
    """The run with the median time out of ``runs`` fresh-process runs (peak RSS: the max)."""
    results = [measure(operation, **kwargs) for _ in range(runs)]
    results.sort(key=lambda r: r.seconds)
    middle = results[len(results) // 2]
    middle.peak_rss = max(r.peak_rss for r in results)
    middle.extra["spread"] = (results[-1].seconds - results[0].seconds) / max(
        statistics.median(r.seconds for r in results), 1e-9
    )
    return middle


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    cells = [[str(c) for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)
