"""Run the backend conformance suite against every backend in conftest.BACKEND_FACTORIES."""

from conformance import BackendConformance


class TestBackend(BackendConformance):
    pass
