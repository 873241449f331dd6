"""Google Drive backend behaviour beyond the shared suites, against the local fake Drive API."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_drive_backend

import ccstore
from ccstore import BackendError
from ccstore.backends.base import RangeByteRequest


@pytest.fixture
def backend(fake_drive):
    fake_drive.clear_faults()
    fake_drive.reset_log()  # one fake serves the session: count only this test's requests
    return make_drive_backend(fake_drive)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (403, "userRateLimitExceeded"),
        (403, "rateLimitExceeded"),
        (429, None),
        (500, None),
        (503, None),
    ],
)
def test_rate_limits_and_server_errors_are_retried(fake_drive, backend, status, reason):
    backend.write("k", [b"payload"])
    fake_drive.inject_fault(status, reason, times=2, op="files.get_media")
    assert backend.read("k", RangeByteRequest(1, 4)) == b"ayl"
    assert fake_drive.count(op="files.get_media", status=status) == 2


def test_exhausted_retries_are_a_clear_error(fake_drive, backend):
    backend.write("k", [b"payload"])
    fake_drive.inject_fault(503, times=10, op="files.get_media")
    with pytest.raises(BackendError, match=r"kept failing for 'k' \(503\) after 2 retries"):
        backend.read("k")


def test_an_error_mentioning_416_is_still_an_error(fake_drive, backend):
    # a read once mistook any error whose text held "416" (say, in a port) for a range error
    backend.write("k", [b"payload"])
    fake_drive.inject_fault(500, "backendError416", times=3, op="files.get_media")
    with pytest.raises(BackendError, match=r"\(500\) after 2 retries"):
        backend.read("k", RangeByteRequest(1, 4))


def test_permission_errors_are_not_retried(fake_drive, backend):
    backend.write("k", [b"payload"])
    fake_drive.inject_fault(403, "insufficientFilePermissions", times=5, op="files.get_media")
    with pytest.raises(BackendError):
        backend.read("k")
    assert fake_drive.count(op="files.get_media", status=403) == 1


def test_duplicate_titles_newest_wins(fake_drive, backend):
    backend.write("dir/k", [b"first"])
    parent = backend._folder(f"{backend.root}/dir", create=False)
    service = backend._service
    from googleapiclient.http import MediaInMemoryUpload

    service.files().insert(
        body={"title": "k", "parents": [{"id": parent}]}, media_body=MediaInMemoryUpload(b"second")
    ).execute()
    fresh = make_drive_backend(fake_drive)
    fresh.root = backend.root
    assert fresh.read("dir/k") == b"second"
    assert list(fresh.list("dir/")) == ["dir/k"]


def test_read_after_write_needs_no_listing(fake_drive, backend):
    backend.write("a/b/c", [b"v"])
    fake_drive.reset_log()
    assert backend.read("a/b/c") == b"v"
    assert fake_drive.count(op="files.list") == 0
    assert fake_drive.count(op="files.get_media") == 1


def test_overwrite_updates_in_place(fake_drive, backend):
    backend.write("k", [b"old"])
    first = backend._file_id("k")
    backend.write("k", [b"new and longer"])
    assert backend._file_id("k", fresh=True) == first  # same file: readers never see it missing
    assert backend.read("k") == b"new and longer"


def test_lazy_slice_moves_only_touched_chunks(fake_drive, backend):
    store = ccstore.Store(backend, "s")
    array = np.arange(200 * 300, dtype="f8").reshape(200, 300)
    store.put("a", array, chunks=(50, 100))
    x = store["a"]
    fake_drive.reset_log()
    np.testing.assert_array_equal(x[120], array[120])
    ranged = [r for r in fake_drive.requests if r.op == "files.get_media"]
    assert len(ranged) == 1  # three neighbouring chunks, coalesced into one ranged GET
    assert ranged[0].bytes_sent <= 3 * 50 * 100 * 8 + 2048


def test_delete_trashes_by_default_and_can_delete(fake_drive, backend):
    backend.write("t", [b"v"])
    backend.delete("t")
    assert fake_drive.count(op="files.trash") == 1
    permanent = make_drive_backend(fake_drive, delete="delete")
    permanent.write("d", [b"v"])
    permanent.delete("d")
    assert fake_drive.count(op="files.delete") == 1
    assert not permanent.exists("d")


@pytest.mark.parametrize("nbytes", [16, 700 << 10])  # one PUT, and several (256 KiB chunks)
def test_stats_count_every_request_on_the_wire(fake_drive, backend, nbytes):
    def api_requests() -> int:  # the service-account token exchange is not a Drive request
        return sum(1 for r in fake_drive.requests if not r.op.startswith("oauth"))

    store = ccstore.Store(backend, "s")
    array = np.arange(nbytes // 8, dtype="u8")
    fake_drive.reset_log()
    store["d/k"] = array
    assert store.stats.requests == api_requests()
    uploads = fake_drive.count(op="upload.chunk")
    assert (uploads > 1) == (nbytes > 256 << 10)
    fake_drive.reset_log()
    before = store.stats.requests
    np.testing.assert_array_equal(store.load("d/k"), array)
    assert store.ls("d") == ["d/k"]
    assert store.stats.requests - before == api_requests() > 0
