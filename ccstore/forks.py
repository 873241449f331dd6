"""Fresh per-process state in a forked child: no worker threads or connections inherited.

A child made by ``os.fork`` (multiprocessing's default start method on Linux before Python
3.14) gets a copy of the parent's memory but only the thread that forked. A thread pool copied
from the parent believes its workers exist and queues work for them forever; a pooled
connection would be shared by two processes, each reading replies meant for the other. Objects
holding either register with ``renew_after_fork`` and drop them in the child (they are built
again on first use there).
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Protocol

__all__ = ["Renewable", "renew_after_fork"]


class Renewable(Protocol):
    def _after_fork(self) -> None:
        """In a forked child: drop thread pools, connections and the locks that guard them."""


# by id: objects that define __eq__ (a store compares by location) must not stand for each other
_LIVE: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


def renew_after_fork(obj: Renewable) -> None:
    """Have ``obj._after_fork()`` called in every child forked while ``obj`` lives."""
    _LIVE[id(obj)] = obj


def _renew_all() -> None:
    for obj in list(_LIVE.values()):
        obj._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_all)
