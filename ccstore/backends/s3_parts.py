"""Request bodies cut from a stream of write parts without copying them.

``cut_parts`` splits the parts handed to ``S3Backend.write`` (1-d buffers and 2-d blocks of
contiguous rows, see ``Backend.writes_blocks``) into upload parts of an exact size, each a
list of views into the original buffers. ``PartBody`` is the file-like body botocore sends for
one of them: sized, rewindable for retries, and read as views of the caller's memory. Only
runs too short for a send of their own (a square chunk's 4 KiB rows, a container's header)
are gathered, a megabyte at a time, into one small buffer per body. An upload therefore needs
no buffer per part in flight: its memory is the array it sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

# A contiguous run shorter than this is copied into the body's gather buffer rather than
# sent alone: a send costs a system call, and copying 256 KiB costs about as much.
GATHER_BELOW = 256 << 10
GATHER_BYTES = 1 << 20

Piece = memoryview | np.ndarray  # 1-d bytes, or a 2-d uint8 block of contiguous rows


def cut_parts(parts: Iterable[Any], part_size: int) -> Iterator[list[Piece]]:
    """Yield the concatenation of ``parts`` as lists of views of exactly ``part_size`` bytes
    (the last list holds the rest and may be shorter; nothing is yielded for no bytes)."""
    current: list[Piece] = []
    room = part_size
    for part in parts:
        pending = [_piece(memoryview(part))]
        while pending:
            piece = pending.pop()
            size = piece.nbytes
            if size == 0:
                continue
            if size <= room:
                head = piece
            elif isinstance(piece, memoryview):
                head = piece[:room]
                pending.append(piece[room:])
            else:
                rows = room // piece.shape[1]
                if rows:
                    head = piece[:rows]
                    pending.append(piece[rows:])
                else:  # the first row straddles the end of the part
                    row = memoryview(piece[0])
                    head = row[:room]
                    pending += [piece[1:], row[room:]]
            current.append(head)
            room -= head.nbytes
            if room == 0:
                yield current
                current, room = [], part_size
    if current:
        yield current


def _piece(view: memoryview) -> Piece:
    if view.ndim == 2:
        rows = np.asarray(view)
        if rows.flags.c_contiguous:  # rows that follow each other are one run
            return memoryview(rows.reshape(-1)).cast("B")
        return rows.view(np.uint8) if rows.dtype != np.uint8 else rows
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


class PartBody:
    """A file-like request body over ``pieces``, read as views of them.

    ``read(size)`` returns the next bytes as a memoryview valid until the next call: a
    contiguous run of the pieces as it is (up to ``max(size, GATHER_BYTES)`` bytes), or short
    runs gathered into a buffer of the body. ``read()`` returns the rest as bytes. ``seek(0)``
    starts over, as botocore does before a retry.
    """

    def __init__(self, pieces: list[Piece]) -> None:
        self._pieces = [piece for piece in pieces if piece.nbytes]
        self._size = sum(piece.nbytes for piece in self._pieces)
        # no larger than the body: a small object's put allocated (and zeroed) 1 MiB each
        self._capacity = min(GATHER_BYTES, self._size)
        self._gather: bytearray | None = None
        self._index = self._offset = self._position = 0

    def __len__(self) -> int:
        return self._size

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        target = (offset, self._position + offset, self._size + offset)[whence]
        if not 0 <= target <= self._size:
            raise ValueError(f"seek to {target} outside a body of {self._size} bytes")
        self._index, self._offset, self._position = 0, 0, 0
        while self._position < target:
            left = self._pieces[self._index].nbytes - self._offset
            self._advance(min(left, target - self._position))
        return self._position

    def read(self, size: int | None = -1) -> memoryview | bytes:
        if size is None or size < 0:
            rest = []
            while chunk := self.read(GATHER_BYTES):
                rest.append(bytes(chunk))
            return b"".join(rest)
        limit = max(size, GATHER_BYTES)
        gathered = 0
        while self._position < self._size and gathered < self._capacity:
            piece = self._pieces[self._index]
            run = self._run(piece)
            if len(run) >= GATHER_BELOW:
                if gathered:
                    break
                run = run[:limit]
                self._advance(len(run))
                return run
            gathered += self._gather_into(piece, run, gathered)
        if not gathered:
            return memoryview(b"")
        assert self._gather is not None
        return memoryview(self._gather)[:gathered]

    def _run(self, piece: Piece) -> memoryview:
        """The contiguous bytes from the current position to the end of its run."""
        if isinstance(piece, memoryview):
            return piece[self._offset :]
        row, column = divmod(self._offset, piece.shape[1])
        return memoryview(piece[row])[column:]

    def _gather_into(self, piece: Piece, run: memoryview, at: int) -> int:
        """Copy the current short run, and the whole rows after it that fit, to the gather
        buffer at ``at``; return how many bytes were copied."""
        if self._gather is None:
            self._gather = bytearray(self._capacity)
        room = self._capacity - at
        if len(run) > room:
            return self._copy(run[:room], at)
        index = self._index
        copied = self._copy(run, at)
        if isinstance(piece, np.ndarray) and self._index == index:  # rows of it remain
            width = piece.shape[1]
            first = self._offset // width
            rows = min((room - copied) // width, piece.shape[0] - first)
            if rows:
                start = at + copied
                target = np.frombuffer(self._gather, np.uint8, rows * width, start)
                np.copyto(target.reshape(rows, width), piece[first : first + rows])
                self._advance(rows * width)
                copied += rows * width
        return copied

    def _copy(self, run: memoryview, at: int) -> int:
        assert self._gather is not None
        self._gather[at : at + len(run)] = run
        self._advance(len(run))
        return len(run)

    def _advance(self, count: int) -> None:
        self._position += count
        self._offset += count
        if self._offset == self._pieces[self._index].nbytes:
            self._index, self._offset = self._index + 1, 0
