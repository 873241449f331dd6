"""Turn a numpy selection into the chunks it touches and where each lands in the result.

A plan fills an intermediate array chunk by chunk (``out[task.out_sel] = chunk[task.chunk_sel]``)
and ``finalize`` reshapes it into exactly what numpy returns for the same selection: dropped
integer axes, inserted new axes, reversed negative steps, and numpy's placement of the
dimensions of advanced (array) indices.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .chunking import ChunkGrid

__all__ = ["ChunkTask", "Plan", "plan_orthogonal_selection", "plan_selection"]

_INDEX_TYPES = (
    "only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and integer or "
    "boolean arrays are valid indices"
)


@dataclass(frozen=True)
class _Int:
    index: int


@dataclass(frozen=True)
class _Slice:
    start: int
    step: int  # always positive; ``flip`` records a negative step
    length: int
    flip: bool


@dataclass(frozen=True)
class _Array:
    indices: np.ndarray  # 1-d, non-negative, in bounds


_AxisSel = _Int | _Slice | _Array


@dataclass(frozen=True)
class ChunkTask:
    """Copy ``chunk[chunk_sel]`` (after ``transpose``, if any) into ``out[out_sel]``."""

    chunk: int
    chunk_sel: tuple
    out_sel: tuple
    transpose: tuple[int, ...] | None = None


@dataclass
class Plan:
    """The chunk copies that build an intermediate of ``shape``, and how to finish it."""

    shape: tuple[int, ...]
    tasks: list[ChunkTask]
    finalize: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class _Entry:
    kind: str  # "int", "slice", "array", "none"
    value: Any = None
    axis: int | None = None


def plan_selection(grid: ChunkGrid, key: Any) -> Plan:
    """Plan numpy's ``array[key]`` (basic and advanced indexing) over chunked storage."""
    entries = _parse(key, grid.shape)
    arrays = [e for e in entries if e.kind == "array"]
    if not arrays:
        sels = [_axis_sel(e) for e in entries if e.axis is not None]
        plan = _plan_orthogonal(grid, sels)
        final = [_entry_length(e) for e in entries if e.kind != "int"]
        flips = _flipped_axes(sels)
        # numpy returns a scalar, not a 0-d array, when every axis takes an integer.
        scalar = all(e.kind == "int" for e in entries) and not _has_ellipsis(key)

        def finish(r: np.ndarray) -> Any:
            r = (np.flip(r, flips) if flips else r).reshape(final)
            return r[()] if scalar else r

        plan.finalize = finish
        return plan

    advanced = [i for i, e in enumerate(entries) if e.kind in ("array", "int")]
    try:
        bshape = np.broadcast_shapes(*(np.shape(entries[i].value) for i in advanced))
    except ValueError:
        shapes = " ".join(str(np.shape(entries[i].value)) for i in advanced)
        raise IndexError(
            f"shape mismatch: indexing arrays could not be broadcast together with shapes {shapes}"
        ) from None
    adjacent = advanced == list(range(advanced[0], advanced[-1] + 1))
    before = sum(1 for e in entries[: advanced[0]] if e.kind in ("slice", "none"))
    rest = [_entry_length(e) for e in entries if e.kind in ("slice", "none")]
    slice_entries = [e for e in entries if e.kind == "slice"]

    if len(arrays) == 1:
        # One array among integers: an orthogonal read with the array flattened on its axis.
        sels = []
        for e in entries:
            if e.axis is None:
                continue
            sels.append(_Array(e.value.reshape(-1)) if e.kind == "array" else _axis_sel(e))
        plan = _plan_orthogonal(grid, sels)
        flips = _flipped_axes(sels)
        kept = [i for i, s in enumerate(sels) if not isinstance(s, _Int)]
        array_pos = kept.index(arrays[0].axis)

        def finish(r: np.ndarray) -> np.ndarray:
            r = np.flip(r, flips) if flips else r
            r = r.reshape([r.shape[i] for i in kept])
            r = np.moveaxis(r, array_pos, 0).reshape(bshape + tuple(rest))
            return _place(r, len(bshape), before if adjacent else 0)

        plan.finalize = finish
        return plan

    adv_axes = [entries[i].axis for i in advanced]
    points = np.stack(
        [np.broadcast_to(entries[i].value, bshape).reshape(-1) for i in advanced], axis=1
    ).astype(np.intp, copy=False)
    slices = [(e.axis, _axis_sel(e)) for e in slice_entries]
    plan = _plan_points(grid, adv_axes, points, slices)
    flips = tuple(1 + i for i, (_, s) in enumerate(slices) if s.flip)

    def finish_points(r: np.ndarray) -> np.ndarray:
        r = np.flip(r, flips) if flips else r
        return _place(r.reshape(bshape + tuple(rest)), len(bshape), before if adjacent else 0)

    plan.finalize = finish_points
    return plan


def plan_orthogonal_selection(grid: ChunkGrid, key: Any) -> Plan:
    """Plan an orthogonal selection: each axis takes an int, a slice, or a 1-d int/bool array,
    independently (zarr's ``oindex``); integer axes are dropped, array axes stay in place."""
    if not isinstance(key, tuple):
        key = (key,)
    for k in key:
        if k is None:
            raise IndexError("oindex does not accept newaxis (None)")
        if not isinstance(k, (slice, int, np.integer)) and k is not Ellipsis and np.ndim(k) > 1:
            raise IndexError("oindex takes integers, slices and one-dimensional arrays per axis")
    entries = _parse(key, grid.shape, orthogonal=True)
    sels = [_axis_sel(e) for e in entries]
    plan = _plan_orthogonal(grid, sels)
    flips = _flipped_axes(sels)
    final = [n for n, s in zip(plan.shape, sels) if not isinstance(s, _Int)]
    plan.finalize = lambda r: np.flip(r, flips).reshape(final) if flips else r.reshape(final)
    return plan


def _has_ellipsis(key: Any) -> bool:
    return any(k is Ellipsis for k in (key if isinstance(key, tuple) else (key,)))


def _place(r: np.ndarray, nb: int, position: int) -> np.ndarray:
    """Move the leading ``nb`` broadcast dimensions to ``position``."""
    if position == 0 or nb == 0:
        return r
    return np.moveaxis(r, list(range(nb)), list(range(position, position + nb)))


def _entry_length(entry: _Entry) -> int:
    return 1 if entry.kind == "none" else entry.value.length


def _flipped_axes(sels: list[_AxisSel]) -> tuple[int, ...]:
    return tuple(i for i, s in enumerate(sels) if isinstance(s, _Slice) and s.flip)


def _parse(key: Any, shape: tuple[int, ...], orthogonal: bool = False) -> list[_Entry]:
    """Expand Ellipsis, validate and normalise every index, and assign axes."""
    if not isinstance(key, tuple):
        key = (key,)
    items: list[tuple[str, Any]] = []
    for k in key:
        if k is None:
            items.append(("none", None))
        elif k is Ellipsis:
            items.append(("ellipsis", None))
        elif isinstance(k, slice):
            items.append(("slice", k))
        elif isinstance(k, (bool, np.bool_)):
            raise IndexError("boolean scalar indices are not supported; use a boolean array")
        elif isinstance(k, (int, np.integer)):
            items.append(("int", int(k)))
        else:
            arr = np.asarray(k)
            if arr.dtype == np.bool_ and arr.ndim > 0:
                items.append(("bool", arr))
            elif arr.dtype.kind in "iu" and arr.ndim == 0:
                items.append(("int", int(arr)))
            elif arr.dtype.kind in "iu" or (arr.size == 0 and isinstance(k, (list, tuple))):
                items.append(("array", arr.astype(np.intp)))
            else:
                raise IndexError(_INDEX_TYPES)
    if sum(kind == "ellipsis" for kind, _ in items) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    consumed = sum(
        v.ndim if kind == "bool" else 1
        for kind, v in items
        if kind in ("int", "slice", "array", "bool")
    )
    ndim = len(shape)
    if consumed > ndim:
        raise IndexError(
            f"too many indices for array: array is {ndim}-dimensional, but {consumed} were indexed"
        )
    fill = [("slice", slice(None))] * (ndim - consumed)
    if any(kind == "ellipsis" for kind, _ in items):
        at = next(i for i, (kind, _) in enumerate(items) if kind == "ellipsis")
        items = items[:at] + fill + items[at + 1 :]
    else:
        items = items + fill

    entries: list[_Entry] = []
    axis = 0
    for kind, value in items:
        if kind == "none":
            entries.append(_Entry("none"))
            continue
        if kind == "bool":
            covered = shape[axis : axis + value.ndim]
            if orthogonal and value.ndim != 1:
                raise IndexError("oindex takes one-dimensional boolean masks")
            for i, (got, want) in enumerate(zip(value.shape, covered)):
                if got != want:
                    raise IndexError(
                        f"boolean index did not match indexed array along axis {axis + i}; "
                        f"size of axis is {want} but size of corresponding boolean axis is {got}"
                    )
            for i, idx in enumerate(np.nonzero(value)):
                entries.append(_Entry("array", idx.astype(np.intp), axis + i))
            axis += value.ndim
            continue
        n = shape[axis]
        if kind == "int":
            if not -n <= value < n:
                raise IndexError(f"index {value} is out of bounds for axis {axis} with size {n}")
            entries.append(_Entry("int", value % n if value < 0 else value, axis))
        elif kind == "slice":
            entries.append(_Entry("slice", _normalize_slice(value, n), axis))
        else:
            if value.size:
                bad = value[(value < -n) | (value >= n)]
                if bad.size:
                    raise IndexError(
                        f"index {int(bad[0])} is out of bounds for axis {axis} with size {n}"
                    )
            entries.append(_Entry("array", np.where(value < 0, value + n, value), axis))
        axis += 1
    return entries


def _normalize_slice(s: slice, n: int) -> _Slice:
    if s.step is not None and s.step == 0:
        raise ValueError("slice step cannot be zero")
    start, stop, step = s.indices(n)
    length = len(range(start, stop, step))
    if step > 0:
        return _Slice(start, step, length, False)
    first = start + (length - 1) * step if length else 0
    return _Slice(first, -step, length, True)


def _axis_sel(entry: _Entry) -> _AxisSel:
    if entry.kind == "int":
        return _Int(entry.value)
    if entry.kind == "slice":
        return entry.value
    return _Array(entry.value)


def _axis_length(sel: _AxisSel) -> int:
    if isinstance(sel, _Int):
        return 1
    if isinstance(sel, _Slice):
        return sel.length
    return len(sel.indices)


def _axis_pieces(sel: _AxisSel, n: int, c: int) -> list[tuple[int, Any, Any]]:
    """(chunk coordinate, selection within that chunk, positions in the output) for one axis."""
    if isinstance(sel, _Int):
        local = sel.index % c
        return [(sel.index // c, slice(local, local + 1), slice(0, 1))]
    if isinstance(sel, _Slice):
        if sel.length == 0:
            return []
        start, step, length = sel.start, sel.step, sel.length
        last = start + (length - 1) * step
        pieces = []
        for j in range(start // c, last // c + 1):
            lo, hi = j * c, min((j + 1) * c, n)
            k0 = max(0, -(-(lo - start) // step))
            k1 = min(length, -(-(hi - start) // step))
            if k1 > k0:
                first = start + k0 * step - lo
                pieces.append(
                    (j, slice(first, first + (k1 - k0 - 1) * step + 1, step), slice(k0, k1))
                )
        return pieces
    indices = sel.indices
    if len(indices) == 0:
        return []
    chunk_ids = indices // c
    order = np.argsort(chunk_ids, kind="stable")
    sorted_ids = chunk_ids[order]
    bounds = np.flatnonzero(np.diff(sorted_ids)) + 1
    pieces = []
    for group in np.split(order, bounds):
        j = int(chunk_ids[group[0]])
        pieces.append((j, indices[group] - j * c, group))
    return pieces


def _plan_orthogonal(grid: ChunkGrid, sels: list[_AxisSel]) -> Plan:
    shape = tuple(_axis_length(s) for s in sels)
    per_axis = [_axis_pieces(s, n, c) for s, n, c in zip(sels, grid.shape, grid.chunks)]
    multi_array = sum(isinstance(s, _Array) for s in sels) > 1
    tasks = []
    for combo in itertools.product(*per_axis):
        coords = tuple(p[0] for p in combo)
        chunk_sel = tuple(p[1] for p in combo)
        out_sel = tuple(p[2] for p in combo)
        if multi_array:
            chunk_sel, out_sel = _ix(chunk_sel), _ix(out_sel)
        tasks.append(ChunkTask(_linear(coords, grid), chunk_sel, out_sel))
    return Plan(shape, tasks, lambda r: r)


def _ix(sel: tuple) -> tuple:
    """Orthogonal (outer-product) indexing arrays for a mix of slices and index arrays."""
    return np.ix_(
        *(np.arange(s.start, s.stop, s.step or 1) if isinstance(s, slice) else s for s in sel)
    )


def _plan_points(
    grid: ChunkGrid, adv_axes: list[int], points: np.ndarray, slices: list[tuple[int, _Slice]]
) -> Plan:
    """Pointwise (numpy advanced) selection on ``adv_axes``, with slices on the other axes."""
    shape = (len(points), *tuple(s.length for _, s in slices))
    chunk_sizes = np.array([grid.chunks[a] for a in adv_axes], dtype=np.intp)
    slice_pieces = [_axis_pieces(s, grid.shape[a], grid.chunks[a]) for a, s in slices]
    transpose = tuple(adv_axes) + tuple(a for a, _ in slices)
    tasks = []
    if len(points):
        chunk_coords = points // chunk_sizes
        codes = np.ravel_multi_index(chunk_coords.T, [grid.grid_shape[a] for a in adv_axes])
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        for group in np.split(order, bounds):
            adv_coords = chunk_coords[group[0]]
            local = tuple(
                points[group, i] - adv_coords[i] * chunk_sizes[i] for i in range(len(adv_axes))
            )
            for combo in itertools.product(*slice_pieces):
                coords = [0] * len(grid.shape)
                for a, j in zip(adv_axes, adv_coords):
                    coords[a] = int(j)
                for (a, _), piece in zip(slices, combo):
                    coords[a] = piece[0]
                chunk_sel = local + tuple(p[1] for p in combo)
                out_sel = (group, *tuple(p[2] for p in combo))
                tasks.append(ChunkTask(_linear(tuple(coords), grid), chunk_sel, out_sel, transpose))
    return Plan(shape, tasks, lambda r: r)


def _linear(coords: tuple[int, ...], grid: ChunkGrid) -> int:
    index = 0
    for c, g in zip(coords, grid.grid_shape):
        index = index * g + c
    return index
