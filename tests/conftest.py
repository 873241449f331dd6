"""Shared fixtures: every backend the suite can reach, and the stores over them.

A new backend joins the whole suite (backend conformance and store tests) by adding a factory
to BACKEND_FACTORIES.
"""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import HealthCheck, settings

import ccstore
from ccstore.backends.local import LocalBackend
from ccstore.backends.memory import MemoryBackend

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=int(os.environ.get("CCSTORE_HYPOTHESIS_EXAMPLES", "60")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)
settings.load_profile("ci")


def _memory(request, tmp_path):
    return MemoryBackend.named(f"test-{uuid.uuid4().hex}")


def _local(request, tmp_path):
    return LocalBackend(tmp_path / "store")


BACKEND_FACTORIES = {"memory": _memory, "local": _local}


@pytest.fixture(params=sorted(BACKEND_FACTORIES))
def backend(request, tmp_path):
    """A fresh, empty backend of each kind."""
    return BACKEND_FACTORIES[request.param](request, tmp_path)


@pytest.fixture
def store(backend):
    """A Store over a fresh backend, below a prefix so prefix handling is always exercised."""
    with ccstore.Store(backend, "root/prefix") as s:
        yield s


def pytest_sessionfinish(session, exitstatus):
    # pytest exits 5 when it collected no tests: for this project that means a broken test run
    # (a bad path or a collection filter), so fail loudly instead of passing vacuously.
    if exitstatus == 5:
        print("\nccstore: no tests were collected; failing the run on purpose")
        session.exitstatus = 1
