"""LazyArray: a stored array that reads only the chunks (or pages) a selection touches."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from .format import ArrayLayout, ObjectLayout
from .indexing import Plan, plan_orthogonal_selection, plan_selection
from .progress import ProgressOption
from .reader import pages_to_read, read_array, read_chunks

if TYPE_CHECKING:
    from .store import Store

__all__ = ["LazyArray"]


class LazyArray:
    """A numpy-like view of a stored array; no data moves until it is indexed or converted.

    ``x[sel]`` accepts what numpy indexing accepts and returns what numpy would, fetching only
    the chunks the selection touches. ``x.oindex[...]`` selects orthogonally (one independent
    index per axis). ``np.asarray(x)`` or ``x.read()`` downloads the whole array in parallel.
    Picklable: it carries its store's configuration and the object's layout, not connections.
    """

    def __init__(self, store: Store, key: str, layout: ObjectLayout, name: str = "data") -> None:
        self._store = store
        self.key = key
        self._layout = layout
        self._array: ArrayLayout = layout.arrays[name]

    @property
    def shape(self) -> tuple[int, ...]:
        return self._array.shape

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    @property
    def ndim(self) -> int:
        return len(self._array.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self._array.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def chunks(self) -> tuple[int, ...]:
        """The stored chunk shape."""
        return self._array.chunks

    @property
    def order(self) -> str:
        return self._array.order

    @property
    def nchunks(self) -> int:
        return self._array.grid.nchunks

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __repr__(self) -> str:
        return (
            f"<LazyArray {self.key!r} shape={self.shape} dtype={self.dtype} "
            f"chunks={self.chunks} order={self.order!r}>"
        )

    def __getitem__(self, selection: Any) -> Any:
        return self._run(plan_selection(self._array.grid, selection))

    @property
    def oindex(self) -> _OrthogonalIndexer:
        """Orthogonal indexing: ``x.oindex[[0, 5], :, [1, 2]]`` picks each axis independently."""
        return _OrthogonalIndexer(self)

    def read(self, *, progress: ProgressOption = None) -> np.ndarray:
        """Download the whole array (in parallel, straight into one preallocated array)."""
        ctx = self._store._io()
        return read_array(ctx, self._layout, self._array, ctx.options.progress_for(progress))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self.read()
        return data if dtype is None else data.astype(dtype, copy=False)

    def _run(self, plan: Plan) -> Any:
        out = np.empty(plan.shape, self.dtype)
        by_chunk: dict[int, list] = defaultdict(list)
        for task in plan.tasks:
            by_chunk[task.chunk].append(task)

        def place(cid: int, chunk: np.ndarray) -> None:
            for task in by_chunk[cid]:
                block = chunk if task.transpose is None else chunk.transpose(task.transpose)
                out[task.out_sel] = block[task.chunk_sel]

        ctx = self._store._io()
        selections = {
            cid: [(task.chunk_sel, task.transpose) for task in tasks]
            for cid, tasks in by_chunk.items()
        }
        pages = pages_to_read(ctx, self._layout, self._array, selections)
        read_chunks(ctx, self._layout, self._array, sorted(by_chunk), place, pages=pages)
        return plan.finalize(out)

    def to_dask(self) -> Any:
        """A dask array with one block (and one task) per stored chunk."""
        import dask.array as da
        from dask.base import tokenize

        # The index holds every chunk's checksum, so the token changes whenever the data does.
        name = f"ccstore-{tokenize(self._store.url, self.key, self._layout.index)}"
        return da.from_array(
            self,
            chunks=self.chunks,
            name=name,
            asarray=False,
            fancy=False,
            meta=np.empty((0,) * self.ndim, self.dtype),
        )


class _OrthogonalIndexer:
    def __init__(self, array: LazyArray) -> None:
        self._array = array

    def __getitem__(self, selection: Any) -> np.ndarray:
        array = self._array
        return array._run(plan_orthogonal_selection(array._array.grid, selection))
