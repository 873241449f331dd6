"""Start real S3 servers on 127.0.0.1 for the tests and benchmarks.

moto's standalone server runs in-process (fast, pure Python). Ceph RADOS Gateway and SeaweedFS
are started by the scripts in ``../shared/servers/`` (they install what they need from Debian
and PyPI), on free ports, with their output in a log file named in any error. A server that
cannot start here raises ServerUnavailable with the reason; callers skip it loudly.
"""

from __future__ import annotations

import os
import shlex
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
    "start_seaweedfs",
]

ACCESS_KEY = "testaccesskey0000000"
SECRET_KEY = "testsecretkey0000000000000000000000000000"
START_TIMEOUT = 600  # includes installing packages on a fresh machine


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


def _run_script(name: str, script: Path, env: dict[str, str], log: Path) -> dict[str, str]:
    """Run a start script; return the exports of the env.sh it writes."""
    if not script.exists():
        raise ServerUnavailable(f"{script} not found (set CCSTORE_SHARED_DIR)")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        try:
            proc = subprocess.run(
                ["bash", str(script)],
                env=os.environ | env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=START_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ServerUnavailable(
                f"{name} did not start within {START_TIMEOUT} s; see {log}"
            ) from None
    if proc.returncode != 0:
        tail = log.read_text()[-1500:]
        raise ServerUnavailable(
            f"{name} start script failed (exit {proc.returncode}); see {log}:\n{tail}"
        )
    exports = {}
    for line in log.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            exports[key] = shlex.split(value)[0] if value else ""
    if "S3_ENDPOINT_URL" not in exports:
        raise ServerUnavailable(f"{name} start script printed no endpoint; see {log}")
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
    env = {
        "CEPH_BASE": str(base / "ceph"),
        "PYTHON": sys.executable,
        "CEPH_OBJECTSTORE": os.environ.get("CEPH_OBJECTSTORE", "memstore"),
        "CEPH_MEMSTORE_GB": os.environ.get("CEPH_MEMSTORE_GB", "6"),
        "RGW_PORT": str(_free_port()),
        "MON_PORT_V2": str(_free_port()),
        "MON_PORT_V1": str(_free_port()),
        "S3_ACCESS_KEY": ACCESS_KEY,
        "S3_SECRET_KEY": SECRET_KEY,
    }
    exports = _run_script("ceph", scripts / "start.sh", env, base / "ceph-start.log")
    stop = _stopper(scripts / "stop.sh", env)
    return S3Endpoint("ceph", exports["S3_ENDPOINT_URL"]), stop


def start_seaweedfs(base: Path) -> tuple[S3Endpoint, Callable[[], None]]:
    """SeaweedFS ``weed mini`` under ``base`` (each HTTP port's gRPC port, +10000, free too)."""
    scripts = _shared() / "servers" / "seaweedfs"
    ports = [_free_port((0, 10000)) for _ in range(4)]
    if len(set(ports)) < 4:
        ports = [_free_port((0, 10000)) for _ in range(4)]
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
    exports = _run_script("seaweedfs", scripts / "start.sh", env, base / "seaweedfs-start.log")
    stop = _stopper(scripts / "stop.sh", env)
    return S3Endpoint("seaweedfs", exports["S3_ENDPOINT_URL"]), stop


SERVERS: dict[str, Callable[..., tuple[S3Endpoint, Callable[[], None]]]] = {
    "moto": start_moto,
    "ceph": start_ceph,
    "seaweedfs": start_seaweedfs,
}
