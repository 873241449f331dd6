"""ordered_map: results in order, whatever the executor and window; one item stays home.
run_groups: each group on its own executor, failures raised once all have settled."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccstore.transfer import ordered_map, run_groups

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


def test_run_groups_runs_each_group_on_its_executor_and_raises_after_all_settle():
    other = ThreadPoolExecutor(2, thread_name_prefix="other")
    ran: dict[str, list] = {"main": [], "other": []}
    lock = threading.Lock()

    def record(group):
        def fn(item):
            if item == "bad":
                raise ValueError(f"{group} failed")
            with lock:
                ran[group].append((item, threading.current_thread().name))

        return fn

    with pytest.raises(ValueError, match="main failed"):
        run_groups(
            [
                (EXECUTOR, record("main"), ["bad", 1, 2]),
                (other, record("other"), [3, "bad", 4]),
            ]
        )
    # every item ran, each group's on its own executor, before the first failure was raised
    assert sorted(item for item, _ in ran["main"]) == [1, 2]
    assert sorted(item for item, _ in ran["other"]) == [3, 4]
    assert all(name.startswith("other") for _, name in ran["other"])
    assert not any(name.startswith("other") for _, name in ran["main"])
    other.shutdown()


def test_run_groups_without_an_executor_runs_in_the_calling_thread():
    caller, seen = threading.get_ident(), []
    run_groups([(None, lambda x: seen.append((x, threading.get_ident())), [1, 2])])
    assert seen == [(1, caller), (2, caller)]
