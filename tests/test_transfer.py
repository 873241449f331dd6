"""ordered_map: results in order, whatever the executor and window; one item stays home."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from hypothesis import given, settings
from hypothesis import strategies as st

from ccstore.transfer import ordered_map

EXECUTOR = ThreadPoolExecutor(3)


@settings(max_examples=100)
@given(
    items=st.lists(st.integers(), max_size=20),
    window=st.integers(0, 5),
    pooled=st.booleans(),
    as_generator=st.booleans(),
)
def test_ordered_map_yields_every_result_in_order(items, window, pooled, as_generator):
    source = (item for item in items) if as_generator else items
    results = ordered_map(EXECUTOR if pooled else None, lambda x: x * 3 + 1, source, window)
    assert list(results) == [x * 3 + 1 for x in items]


def test_ordered_map_runs_one_item_in_the_calling_thread_and_more_on_the_executor():
    caller = threading.get_ident()

    def where(item: int) -> bool:
        return threading.get_ident() == caller

    assert list(ordered_map(EXECUTOR, where, [0], 4)) == [True]
    assert list(ordered_map(EXECUTOR, where, [0, 1, 2], 4)) == [False] * 3
