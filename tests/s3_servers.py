"""Start real S3 servers on 127.0.0.1 for the tests and benchmarks.

moto's standalone server runs in-process (fast, pure Python). Ceph RADOS Gateway and SeaweedFS
are started by the scripts in ``../shared/servers/`` (they install what they need from Debian
and PyPI), on free ports, with their output in a log file named in any error. A server that
cannot start here raises ServerUnavailable with the reason; callers skip it loudly.

    endpoint, stop = start_ceph(tmp_path)      # or start_moto(), start_seaweedfs(tmp_path)
    s3 = endpoint.client(retries={"max_attempts": 1})
    ...
    stop()

``selected_servers()`` names the servers to run (env ``CCSTORE_S3_SERVERS``, a comma list,
default all of ``SERVERS``). The shared scripts are found in ``<repo>/../shared`` or in
``$CCSTORE_SHARED_DIR``; start scripts are bounded by ``$CCSTORE_S3_START_TIMEOUT`` seconds
(default 600, apt/pip installs included).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "SERVERS",
    "S3Endpoint",
    "ServerUnavailable",
    "start_ceph",
    "start_moto",
    "selected_servers",
    "start_seaweedfs",
]

ACCESS_KEY = "testaccesskey0000000"
SECRET_KEY = "testsecretkey0000000000000000000000000000"
# includes installing packages on a fresh machine
START_TIMEOUT = float(os.environ.get("CCSTORE_S3_START_TIMEOUT", "600"))


class ServerUnavailable(Exception):
    """The server cannot start on this machine; the message says why."""


@dataclass(frozen=True)
class S3Endpoint:
    name: str
    endpoint_url: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = "us-east-1"

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (path style, checksums only when required)."""
        import boto3
        from botocore.config import Config

        options = {
            "s3": {"addressing_style": "path"},
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        } | config
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(**options),
        )


def _shared() -> Path:
    configured = os.environ.get("CCSTORE_SHARED_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared"


def _free_port(also_free: tuple[int, ...] = ()) -> int:
    """A free TCP port on 127.0.0.1 such that port + each offset is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + max(also_free, default=0) > 65000:
            continue
        if all(_is_free(port + offset) for offset in also_free):
            return port
    raise ServerUnavailable("no free ports on 127.0.0.1")


def _free_ports(count: int, also_free: tuple[int, ...] = ()) -> list[int]:
    """``count`` distinct free ports (each with ``port + offset`` free for every offset)."""
    ports: list[int] = []
    for _ in range(50):
        port = _free_port(also_free)
        taken = {p + o for p in ports for o in (0, *also_free)}
        if not {port + o for o in (0, *also_free)} & taken:
            ports.append(port)
        if len(ports) == count:
            return ports
    raise ServerUnavailable(f"could not find {count} distinct free ports on 127.0.0.1")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_moto() -> tuple[S3Endpoint, Callable[[], None]]:
    """moto's threaded server on a free port (it hangs if the port is taken, so pick first)."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return S3Endpoint("moto", f"http://127.0.0.1:{port}", "moto-key", "moto-secret"), server.stop


def _run_script(
    name: str, script: Path, env: dict[str, str], log: Path, env_file: Path, cleanup: Path
) -> dict[str, str]:
    """Run a start script; return the exports of the env.sh it writes.

    On failure or timeout the script's process group is killed and ``cleanup`` (the matching
    stop script) is run, so no half-started daemons are left behind.
    """
    if not script.exists():
        raise ServerUnavailable(f"{script} not found (set CCSTORE_SHARED_DIR)")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["bash", str(script)],
            env=os.environ | env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # the daemons' group, killed as a whole on failure
        )
        try:
            returncode = proc.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            returncode = None
    if returncode != 0:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        _stopper(cleanup, env)()
        tail = log.read_text(errors="replace")[-1500:]
        why = (
            f"did not start within {START_TIMEOUT:.0f} s"
            if returncode is None
            else f"start script failed (exit {returncode})"
        )
        raise ServerUnavailable(f"{name} {why}; full log: {log}\n{tail}")
    text = env_file.read_text() if env_file.exists() else log.read_text()
    exports = {}
    for line in text.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            exports[key] = shlex.split(value)[0] if value else ""
    if "S3_ENDPOINT_URL" not in exports:
        raise ServerUnavailable(f"{name} start script wrote no endpoint; see {log}")
    return exports


def _stopper(script: Path, env: dict[str, str]) -> Callable[[], None]:
    def stop() -> None:
        subprocess.run(
            ["bash", str(script)],
            env=os.environ | env,
            capture_output=True,
            timeout=120,
            check=False,
        )

    return stop


def start_ceph(base: Path) -> tuple[S3Endpoint, Callable[[], None]]:
    """A single-node Ceph RADOS Gateway (memstore) under ``base``."""
    scripts = _shared() / "servers" / "ceph-rgw"
    ceph_base = base / "ceph"
    rgw, mon2, mon1 = _free_ports(3)
    env = {
        "CEPH_BASE": str(ceph_base),
        "PYTHON": sys.executable,
        "CEPH_OBJECTSTORE": os.environ.get("CEPH_OBJECTSTORE", "memstore"),
        "CEPH_MEMSTORE_GB": os.environ.get("CEPH_MEMSTORE_GB", "6"),
        "RGW_PORT": str(rgw),
        "MON_PORT_V2": str(mon2),
        "MON_PORT_V1": str(mon1),
        "S3_ACCESS_KEY": ACCESS_KEY,
        "S3_SECRET_KEY": SECRET_KEY,
    }
    stop_script = scripts / "stop.sh"
    if (ceph_base / "pids").exists():
        # start.sh would call a stop-ceph-rgw.sh that does not exist, ignore the failure and
        # wipe the directory, orphaning the old daemons: stop them first with stop.sh
        _stopper(stop_script, env)()
    exports = _run_script(
        "ceph",
        scripts / "start.sh",
        env,
        base / "ceph-start.log",
        ceph_base / "env.sh",
        stop_script,
    )
    return S3Endpoint("ceph", exports["S3_ENDPOINT_URL"]), _ceph_stopper(stop_script, env)


def _ceph_stopper(script: Path, env: dict[str, str]) -> Callable[[], None]:
    """stop.sh stops the daemons one after the other (~10 s, radosgw alone ~6 s): signal
    them all first so they shut down together, then let stop.sh wait and clean up."""
    stop_sh = _stopper(script, env)

    def stop() -> None:
        pids = Path(env["CEPH_BASE"]) / "pids"
        if pids.exists():
            for line in pids.read_text().splitlines():
                fields = line.split()
                if len(fields) == 2 and fields[1].isdigit():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(fields[1]), signal.SIGTERM)
        stop_sh()

    return stop


def start_seaweedfs(base: Path) -> tuple[S3Endpoint, Callable[[], None]]:
    """SeaweedFS ``weed mini`` under ``base`` (each HTTP port's gRPC port, +10000, free too)."""
    scripts = _shared() / "servers" / "seaweedfs"
    ports = _free_ports(4, (10000,))  # weed's gRPC port is each HTTP port + 10000
    env = {
        "SWFS_DIR": str(base / "seaweedfs"),
        "SWFS_VENV": os.environ.get(
            "SWFS_VENV", str(Path.home() / ".cache" / "ccstore-seaweedfs-venv")
        ),
        "SWFS_S3_PORT": str(ports[0]),
        "SWFS_MASTER_PORT": str(ports[1]),
        "SWFS_VOLUME_PORT": str(ports[2]),
        "SWFS_FILER_PORT": str(ports[3]),
        "S3_ACCESS_KEY": ACCESS_KEY,
        "S3_SECRET_KEY": SECRET_KEY,
    }
    exports = _run_script(
        "seaweedfs",
        scripts / "start.sh",
        env,
        base / "seaweedfs-start.log",
        base / "seaweedfs" / "env.sh",
        scripts / "stop.sh",
    )
    stop = _stopper(scripts / "stop.sh", env)
    return S3Endpoint("seaweedfs", exports["S3_ENDPOINT_URL"]), stop


SERVERS: dict[str, Callable[..., tuple[S3Endpoint, Callable[[], None]]]] = {
    "moto": start_moto,
    "ceph": start_ceph,
    "seaweedfs": start_seaweedfs,
}


def selected_servers(value: str | None = None) -> list[str]:
    """The servers to run: ``value`` or env ``CCSTORE_S3_SERVERS`` (comma list), default all.

    An unknown name is an error rather than a silent skip.
    """
    if value is None:
        value = os.environ.get("CCSTORE_S3_SERVERS", ",".join(SERVERS))
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in SERVERS]
    if unknown:
        raise ValueError(
            f"unknown S3 servers {unknown} in CCSTORE_S3_SERVERS; known: {list(SERVERS)}"
        )
    return names
