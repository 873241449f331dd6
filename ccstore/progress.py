"""Progress reports: of one transfer (bytes), and of a batch of objects (objects, and bytes)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["AUTO_PROGRESS_BYTES", "BATCH_BAR_DELAY", "BatchProgress", "Progress", "ProgressOption"]

R = TypeVar("R", bound="_Report")
ProgressOption = bool | None | Callable[[int, int], Any]
# With progress=None (the default), a bar appears only for transfers at least this large and
# only when stderr is a terminal: small objects and scripts stay quiet.
AUTO_PROGRESS_BYTES = 256 << 20
# With progress=None, a batch's bar appears once the batch has run this many seconds (on a
# terminal): how long a batch takes is not known from its size before it runs.
BATCH_BAR_DELAY = 2.0


class _Report:
    """What both reports share: an optional tqdm bar, closed on leaving a ``with`` block."""

    _bar: Any = None

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self: R) -> R:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Progress(_Report):
    """Thread-safe progress of one transfer: a tqdm bar, a callback, or nothing.

    ``option`` is True (always a bar), False (nothing), None (a bar for large transfers on a
    terminal) or a callable ``fn(bytes_done, bytes_total)`` called after every chunk. Within
    a batch, ``option`` is the batch's ``object_progress()``, and the bytes go to the batch.
    """

    def __init__(self, option: ProgressOption, total: int, description: str) -> None:
        self.total = total
        self.done = 0
        self._lock = threading.Lock()
        self._batch = option.batch if isinstance(option, _BatchBytes) else None
        self._callback = option if callable(option) else None  # (_BatchBytes is not callable)
        self._bar = None
        show = option is True or (
            option is None and total >= AUTO_PROGRESS_BYTES and sys.stderr.isatty()
        )
        if show:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=description, unit="B", unit_scale=True)

    def update(self, nbytes: int) -> None:
        if self._batch is not None:
            self._batch.add_bytes(nbytes)
            return
        with self._lock:
            self.done += nbytes
            done = self.done
            if self._bar is not None:
                self._bar.update(nbytes)
        if self._callback is not None:
            self._callback(done, self.total)


class BatchProgress(_Report):
    """Thread-safe progress of a batch of ``count`` objects: one tqdm bar, a callback, or
    nothing, in place of a report per object.

    It counts objects, whose number is known before the batch starts (their sizes are not,
    for reads): ``option`` True is a bar of objects that also shows the bytes moved so far,
    None the same bar once the batch has run ``BATCH_BAR_DELAY`` seconds on a terminal, a
    callable is called ``fn(objects_done, objects_total)`` as each object is done, False is
    nothing. Each object of the batch reports through ``object_progress()``. A batch inside
    a batch (a prefix loaded by ``load_many``) reports its bytes to the outer one and counts
    nothing itself: the outer batch counts it as one object.
    """

    def __init__(self, option: ProgressOption, count: int, description: str) -> None:
        self.total = count
        self.done = 0
        self.nbytes = 0
        self._lock = threading.Lock()
        self._outer = option.batch if isinstance(option, _BatchBytes) else None
        self._callback = option if callable(option) else None
        self._bar = None
        if self._outer is None and (option is True or (option is None and sys.stderr.isatty())):
            from tqdm.auto import tqdm

            delay = 0.0 if option is True else BATCH_BAR_DELAY
            self._bar = tqdm(total=count, desc=description, unit="obj", delay=delay)

    def object_progress(self) -> ProgressOption | _BatchBytes:
        """The ``progress`` option for one object of the batch."""
        if self._outer is not None:
            return self._outer.object_progress()
        return _BatchBytes(self) if self._bar is not None else False

    def add_bytes(self, nbytes: int) -> None:
        with self._lock:
            self.nbytes += nbytes
            if self._bar is not None:
                from tqdm.auto import tqdm

                self._bar.set_postfix_str(tqdm.format_sizeof(self.nbytes, "B", 1024), False)

    def object_done(self) -> None:
        with self._lock:
            self.done += 1
            done = self.done
            if self._bar is not None:
                self._bar.update(1)
        if self._callback is not None:
            self._callback(done, self.total)


class _BatchBytes:
    """The progress option of one object of a batch: its bytes go to the batch."""

    def __init__(self, batch: BatchProgress) -> None:
        self.batch = batch
