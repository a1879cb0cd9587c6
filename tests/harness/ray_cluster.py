"""One Ray for the whole test session (started lazily), with Serve's HAProxy ingress."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.ray_bootstrap import RayConnection, haproxy_environment, stop_local_haproxy

_EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception|Broken)\b")
# The session Ray's temp dir while it runs: its logs are read when an end-to-end test fails.
SESSION_TEMP_DIR: list[Path] = []


def platform_error_lines(limit: int = 80) -> list[str]:
    """The last ``limit`` error lines our processes on the session Ray logged, file by file."""
    if not SESSION_TEMP_DIR:
        return []
    logs = SESSION_TEMP_DIR[0] / "session_latest" / "logs"
    # Our processes' output (gateway replicas, hosts, agent runs), not Ray's own core logs.
    paths = sorted(logs.glob("worker-*.err")) + sorted(logs.glob("worker-*.out"))
    lines: list[str] = []
    for path in paths:
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                if "[error" in line or _EXCEPTION_LINE.match(line):
                    lines.append(f"{path.name}: {line[:400]}")
    return lines[-limit:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """Start the session's single local Ray and yield its GCS address."""
    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    # Local Ray processes inherit this environment; Serve's proxy reads the HAProxy switches.
    haproxy_dir = tempfile.mkdtemp(prefix="vc-hap-")
    temp_dir = tempfile.mkdtemp(prefix="vc-ray-")
    SESSION_TEMP_DIR[:] = [Path(temp_dir)]
    os.environ.update(haproxy_environment(Path(haproxy_dir)))
    info = ray.init(
        address="local",
        include_dashboard=False,
        log_to_driver=False,
        num_cpus=2,
        namespace="vibecode",
        _temp_dir=temp_dir,
    )
    try:
        yield str(info.address_info["gcs_address"])
    finally:
        # ray.shutdown takes every actor down; Serve's graceful shutdown alone waits ~30 s.
        ray.shutdown()
        stop_local_haproxy(
            RayConnection(
                started_locally=True,
                address="",
                dashboard_url=None,
                haproxy=True,
                haproxy_dir=haproxy_dir,
            )
        )
        # Logs and sockets of a finished session: nothing reads them after this.
        SESSION_TEMP_DIR.clear()
        shutil.rmtree(temp_dir, ignore_errors=True)
        shutil.rmtree(haproxy_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def serve_port() -> int:
    """Serve's HTTP port is fixed for the life of the cluster's Serve instance."""
    return free_port()
