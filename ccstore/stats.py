"""Request and byte counters that every backend keeps, so users can see what an operation cost."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields

__all__ = ["Stats", "StatsSnapshot"]


@dataclass(frozen=True)
class StatsSnapshot:
    """Counters at one moment; subtract two snapshots to get the cost of what ran between."""

    requests: int = 0
    reads: int = 0
    writes: int = 0
    lists: int = 0
    heads: int = 0
    deletes: int = 0
    copies: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    def __sub__(self, other: StatsSnapshot) -> StatsSnapshot:
        return StatsSnapshot(
            **{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)}
        )


class Stats:
    """Thread-safe counters of backend requests by type and of bytes moved.

    ``requests`` counts every request sent to the storage service (a multipart upload counts
    its initiation, each part and its completion). ``snapshot()`` freezes the current values.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys((f.name for f in fields(StatsSnapshot)), 0)

    def record(self, op: str, *, requests: int = 1, bytes_read: int = 0, bytes_written: int = 0):
        """Count ``requests`` requests of type ``op`` ("reads", "writes", ...) and their bytes."""
        with self._lock:
            values = self._values
            values["requests"] += requests
            values[op] += requests
            values["bytes_read"] += bytes_read
            values["bytes_written"] += bytes_written

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            return StatsSnapshot(**self._values)

    def reset(self) -> None:
        with self._lock:
            for name in self._values:
                self._values[name] = 0

    def __getattr__(self, name: str) -> int:
        values = self.__dict__.get("_values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(name)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.snapshot().__dict__.items())
        return f"Stats({inner})"

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()
