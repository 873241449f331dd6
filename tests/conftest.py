"""Shared fixtures: every backend the suite can reach, and the stores over them.

A new backend joins the whole suite (backend conformance and store tests) by adding a factory
to BACKEND_FACTORIES. S3 backends run against real servers on 127.0.0.1 that the suite starts
itself (tests/s3_servers.py): moto, Ceph RADOS Gateway and SeaweedFS, or the subset named in
CCSTORE_S3_SERVERS. A server whose start script says it cannot run here is skipped, loudly.
"""

from __future__ import annotations

import json
import math
import os
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import ccstore
from ccstore.backends.local import LocalBackend
from ccstore.backends.memory import MemoryBackend
from ccstore.format import FOOTER, INDEX_ENTRY, checksum

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=int(os.environ.get("CCSTORE_HYPOTHESIS_EXAMPLES", "60")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)
settings.load_profile("ci")


S3_SERVERS = [
    name.strip()
    for name in os.environ.get("CCSTORE_S3_SERVERS", "moto,ceph,seaweedfs").split(",")
    if name.strip()
]
# The shared server scripts create this user; moto accepts any keys. Unpickled S3 backends
# find credentials through boto3's standard chain, so they come from the environment.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testaccesskey0000000")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testsecretkey0000000000000000000000000000")


class S3Servers:
    """Starts each S3 server on first use and stops them all at the end of the session."""

    def __init__(self, base):
        self.base = base
        self.endpoints = {}
        self.unavailable = {}
        self._stops = []

    def endpoint(self, name):
        from s3_servers import SERVERS, ServerUnavailable

        if name in self.unavailable:
            pytest.skip(f"S3 server {name} cannot run here: {self.unavailable[name]}")
        if name not in self.endpoints:
            start = SERVERS[name]
            try:
                endpoint, stop = start() if name == "moto" else start(self.base / name)
            except ServerUnavailable as e:
                self.unavailable[name] = str(e)
                pytest.skip(f"S3 server {name} cannot run here: {e}")
            self.endpoints[name] = endpoint
            self._stops.append(stop)
        return self.endpoints[name]

    def stop_all(self):
        for stop in reversed(self._stops):
            stop()


_SERVERS: S3Servers | None = None


@pytest.fixture(scope="session")
def s3_servers(tmp_path_factory):
    global _SERVERS
    _SERVERS = S3Servers(tmp_path_factory.mktemp("s3-servers"))
    yield _SERVERS
    _SERVERS.stop_all()


_BUCKETS: list = []  # (endpoint, bucket) created by the running test


def make_s3_backend(endpoint, **options):
    """An S3Backend on a fresh bucket of ``endpoint``, dropped when the test ends."""
    from ccstore.backends.s3 import S3Backend

    bucket = f"ccstore-{uuid.uuid4().hex[:16]}"
    backend = S3Backend(
        bucket,
        endpoint_url=endpoint.endpoint_url,
        region=endpoint.region,
        create_bucket=True,
        **options,
    )
    _BUCKETS.append((endpoint, bucket))
    return backend


@pytest.fixture(autouse=True)
def _drop_test_buckets():
    """Delete the buckets a test made: SeaweedFS gives every bucket its own volumes and runs
    out of them after a few hundred, and Ceph's memstore keeps every object in RAM."""
    yield
    while _BUCKETS:
        endpoint, bucket = _BUCKETS.pop()
        client = endpoint.client()
        try:
            for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
                client.abort_multipart_upload(
                    Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
            client.delete_bucket(Bucket=bucket)
        except Exception:  # a server already stopped, or a bucket a test removed itself
            pass


def _s3(name):
    def factory(request, tmp_path):
        return make_s3_backend(request.getfixturevalue("s3_servers").endpoint(name))

    return factory


def _memory(request, tmp_path):
    return MemoryBackend.named(f"test-{uuid.uuid4().hex}")


def _local(request, tmp_path):
    return LocalBackend(tmp_path / "store")


@pytest.fixture(scope="session")
def fake_drive():
    """The local fake of the Drive v2 API (tests/fake_drive), one per session."""
    from fake_drive import FakeDrive

    with FakeDrive() as drive:
        yield drive


def make_drive_backend(fake, **options):
    """A DriveBackend rooted in a fresh folder of the fake, through real pydrive2 auth."""
    from drive_client import service_account_info

    from ccstore.backends.gdrive import DriveBackend

    return DriveBackend(
        f"ccstore-{uuid.uuid4().hex[:12]}",
        credentials=json.dumps(service_account_info(fake)),
        api_url=fake.url,
        **({"retries": 2, "chunk_size": 256 << 10} | options),
    )


def _gdrive(request, tmp_path):
    return make_drive_backend(request.getfixturevalue("fake_drive"))


BACKEND_FACTORIES = {"memory": _memory, "local": _local, "gdrive": _gdrive}
BACKEND_FACTORIES.update({f"s3-{name}": _s3(name) for name in S3_SERVERS})


@pytest.fixture(params=sorted(BACKEND_FACTORIES))
def backend(request, tmp_path):
    """A fresh, empty backend of each kind."""
    return BACKEND_FACTORIES[request.param](request, tmp_path)


@pytest.fixture
def store(backend):
    """A Store over a fresh backend, below a prefix so prefix handling is always exercised."""
    with ccstore.Store(backend, "root/prefix") as s:
        yield s


def pytest_terminal_summary(terminalreporter):
    if _SERVERS is not None and _SERVERS.unavailable:
        terminalreporter.section("S3 SERVERS SKIPPED", sep="!", red=True, bold=True)
        for name, reason in _SERVERS.unavailable.items():
            terminalreporter.line(f"{name}: {reason}", red=True)


def pytest_sessionfinish(session, exitstatus):
    # pytest exits 5 when it collected no tests: for this project that means a broken test run
    # (a bad path or a collection filter), so fail loudly instead of passing vacuously.
    if exitstatus == 5:
        print("\nccstore: no tests were collected; failing the run on purpose")
        session.exitstatus = 1


def stored_index(data: bytes | bytearray) -> np.ndarray:
    """The chunk index (offset, nbytes, checksum of every chunk) of a stored object's bytes."""
    data_end, header_len, index_len, *_ = FOOTER.unpack(data[-FOOTER.size :])
    start = data_end + header_len
    return np.frombuffer(bytes(data[start : start + index_len]), INDEX_ENTRY).copy()


def fix_checksums(data: bytearray) -> None:
    """Recompute every CRC (chunks, page tables, header and index) of edited stored bytes, as
    anyone who edits them can: what is left to notice the edit is what CRCs cannot check."""
    data_end, header_len, index_len, _, version, flags, magic = FOOTER.unpack(data[-FOOTER.size :])
    index = stored_index(data)
    for entry in index:
        start, n = int(entry["offset"]), int(entry["nbytes"])
        entry["checksum"] = checksum(bytes(data[start : start + n]))
    try:
        arrays = json.loads(bytes(data[data_end : data_end + header_len]))["arrays"]
    except (ValueError, KeyError, TypeError):  # an edited header: no page tables to find
        arrays = []
    for spec in arrays:
        if not isinstance(spec, dict) or "pages" not in spec:
            continue
        size, at = spec["pages"]["size"], spec["pages"]["offset"]
        chunks = index[spec["first_chunk"] : spec["first_chunk"] + _nchunks(spec)]
        for entry in chunks:
            start, n = int(entry["offset"]), int(entry["nbytes"])
            for page in range(start, start + n, size):
                crc = checksum(bytes(data[page : min(page + size, start + n)]))
                data[at : at + 4] = crc.to_bytes(4, "little")
                at += 4
    data[data_end + header_len : data_end + header_len + index_len] = index.tobytes()
    meta_crc = checksum(bytes(data[data_end : data_end + header_len + index_len]))
    data[-FOOTER.size :] = FOOTER.pack(
        data_end, header_len, index_len, meta_crc, version, flags, magic
    )


def _nchunks(spec: dict) -> int:
    return math.prod(-(-n // c) for n, c in zip(spec["shape"], spec["chunks"]))


def read_cost(store, read):
    """``(read(), the requests and bytes it cost store's backend)``."""
    before = store.stats.snapshot()
    result = read()
    return result, store.stats.snapshot() - before


def traced_peak(fn):
    """``(fn(), the peak of Python-traced memory allocated while it ran)``."""
    import tracemalloc

    tracemalloc.start()
    try:
        return fn(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
