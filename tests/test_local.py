"""Local directory backend specifics: nothing escapes the root, atomic replace survives kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import ccstore
from ccstore import InvalidKeyError
from ccstore.backends.local import LocalBackend
from ccstore.keys import TEMP_SUFFIX

ESCAPES = ["../outside", "a/../../outside", "/etc/passwd", "..", "a/./b", "a\\..\\b", "a//b"]


@pytest.mark.parametrize("key", ESCAPES)
def test_no_key_reaches_outside_the_root(tmp_path, key):
    root = tmp_path / "root"
    backend = LocalBackend(root)
    with pytest.raises(InvalidKeyError):
        backend.write(key, [b"x"])
    with pytest.raises(InvalidKeyError):
        backend.read(key)
    with pytest.raises(InvalidKeyError):
        backend.delete(key)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["root"] if root.exists() else [])
    assert not root.exists() or not any(root.rglob("*"))


def test_keys_map_one_to_one_onto_files(tmp_path):
    backend = LocalBackend(tmp_path)
    backend.write("a/b/c.bin", [b"data"])
    assert (tmp_path / "a" / "b" / "c.bin").read_bytes() == b"data"
    (tmp_path / "written" / "by").mkdir(parents=True)
    (tmp_path / "written" / "by" / "others").write_bytes(b"foreign")
    assert backend.read("written/by/others") == b"foreign"


def test_object_and_prefix_conflict_is_a_clear_error(tmp_path):
    backend = LocalBackend(tmp_path)
    backend.write("a", [b"x"])
    with pytest.raises(InvalidKeyError, match="parent of this key is an object"):
        backend.write("a/b", [b"y"])
    backend.write("d/e", [b"y"])
    with pytest.raises(InvalidKeyError, match="holds keys below it"):
        backend.write("d", [b"z"])
    assert sorted(backend.list("")) == ["a", "d/e"]
    assert not list(tmp_path.rglob(f"*{TEMP_SUFFIX}"))


def test_temp_files_are_never_listed(tmp_path):
    backend = LocalBackend(tmp_path)
    backend.write("k", [b"v"])
    (tmp_path / f"k.0123{TEMP_SUFFIX}").write_bytes(b"leftover of a killed write")
    assert list(backend.list("")) == ["k"]
    assert backend.list_dir("") == (["k"], [])


def test_empty_directories_are_pruned_on_delete(tmp_path):
    backend = LocalBackend(tmp_path / "r")
    backend.write("a/b/c/d", [b"v"])
    backend.delete("a/b/c/d")
    assert list((tmp_path / "r").iterdir()) == []


def test_fsync_option(tmp_path):
    store = ccstore.open(tmp_path, fsync=True)
    assert store.backend.fsync is True
    store["a"] = np.arange(10)
    np.testing.assert_array_equal(store.load("a"), np.arange(10))


@pytest.mark.slow
def test_kill_during_overwrite_keeps_old_value(tmp_path):
    """A writer killed with SIGKILL mid-overwrite leaves the old value and no stray keys."""
    store = ccstore.open(tmp_path / "s")
    old = np.arange(1000, dtype="i8")
    store["victim"] = old
    marker = tmp_path / "started"
    script = textwrap.dedent(
        f"""
        import numpy as np, ccstore, pathlib
        store = ccstore.open({str(tmp_path / "s")!r}, concurrency=1, chunk_bytes=1 << 20)

        def chunks():
            # an endless stream of chunk writes: the kill always lands mid-write
            pathlib.Path({str(marker)!r}).touch()
            while True:
                yield b"x" * (1 << 20)

        store.backend.write("victim", chunks())
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "writer exited early"
            assert time.monotonic() < deadline, "writer never started"
            time.sleep(0.05)
        time.sleep(0.3)  # let it write tens of MiB
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    np.testing.assert_array_equal(store.load("victim"), old)
    assert list(store) == ["victim"]
    leftovers = list((tmp_path / "s").glob(f"*{TEMP_SUFFIX}"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 1 << 20
