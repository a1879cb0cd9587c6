"""A private docker daemon for tests, and the docker sandbox backend's settings on it.

Never the host's daemon and never the host's network: ``dockerd`` runs with its own socket,
data-root, exec-root and pidfile in a temp dir, with ``--iptables=false --ip-forward=false
--ip-masq=false --bridge=none`` (with defaults it rewrites iptables and enables ip_forward).
It brings up its own containerd under the exec-root. The sandbox image is imported from the
cached debootstrap tarball (``sandbox_image.py``). Started lazily on first use, once per
session; stopped by PID at the end (``stop_shared_dockerd``, or the atexit hook).
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import pytest
import requests.exceptions

from sandbox import DockerSettings
from tests.harness.processes import pid_alive, stop_pid, track_pid, wait_until
from tests.harness.run import RUN_ID, record
from tests.harness.sandbox_image import build_rootfs_tarball, image_tag

__all__ = [
    "RUN_LABEL",
    "PrivateDockerd",
    "docker_backend",
    "docker_test_settings",
    "shared_private_dockerd",
    "start_private_dockerd",
    "stop_shared_dockerd",
]

RUN_LABEL = "dev.vibecode.test-run"
DAEMON_FLAGS = (
    "--iptables=false",
    "--ip-forward=false",
    "--ip-masq=false",
    "--bridge=none",
    "--log-level=warn",
)
MNT_DETACH = 2


@dataclass
class PrivateDockerd:
    workdir: Path
    pid: int
    process: subprocess.Popen[bytes]
    version: str = ""
    image: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def socket_path(self) -> Path:
        return self.workdir / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_path}"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.docker_host, timeout=120)

    def describe(self) -> str:
        timings = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings_s.items())
        return f"private dockerd {self.version} ({timings})"

    def leaked_containers(self) -> list[str]:
        """Names of containers of this test run still present."""
        with contextlib.closing(self.client()) as client:
            found = client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={RUN_ID}"})
            return [str(container.name) for container in found]

    def close(self) -> None:
        """Remove the run's containers, stop the daemon by PID, unmount and delete its dirs."""
        with (
            contextlib.suppress(
                docker.errors.DockerException, requests.exceptions.RequestException
            ),
            contextlib.closing(self.client()) as client,
        ):
            for container in client.containers.list(all=True):
                container.remove(force=True)
        stop_pid(self.pid, popen=self.process, grace_s=15.0)
        containerd = _read_pid(self.workdir / "exec" / "containerd" / "containerd.pid")
        if containerd and pid_alive(containerd):
            stop_pid(containerd, grace_s=5.0)
        if _unmount_under(self.workdir):
            shutil.rmtree(self.workdir, ignore_errors=True)


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def _unmount_under(root: Path) -> bool:
    """Lazily unmount everything mounted below ``root``; True when nothing is left."""
    libc = ctypes.CDLL(None, use_errno=True)
    prefix = str(root) + "/"
    for _ in range(3):
        targets = [
            line.split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(prefix)
        ]
        if not targets:
            return True
        for target in sorted(targets, key=len, reverse=True):
            libc.umount2(target.encode(), MNT_DETACH)
    return False


def start_private_dockerd(run_id: str = RUN_ID) -> PrivateDockerd:
    """Start a private dockerd and import the sandbox image into it.

    Raises ``FileNotFoundError`` when dockerd or debootstrap is missing and ``RuntimeError``
    when the daemon does not come up."""
    binary = shutil.which("dockerd")
    if binary is None:
        raise FileNotFoundError("dockerd is not installed (apt-get install docker.io)")
    started = time.monotonic()
    tarball = build_rootfs_tarball()
    built_s = time.monotonic() - started
    # Short: containerd's sockets live under the exec-root (107-byte socket path limit).
    workdir = Path(tempfile.mkdtemp(prefix=f"{run_id}-dockerd-", dir="/tmp"))
    log = (workdir / "dockerd.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            "-H",
            f"unix://{workdir / 'docker.sock'}",
            "--data-root",
            str(workdir / "data"),
            "--exec-root",
            str(workdir / "exec"),
            "--pidfile",
            str(workdir / "docker.pid"),
            *DAEMON_FLAGS,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    daemon = PrivateDockerd(workdir=workdir, pid=process.pid, process=process)
    track_pid(process.pid, daemon.close)
    try:
        up = time.monotonic()
        wait_until(lambda: _answers(daemon), timeout_s=30, what="private dockerd")
        daemon.timings_s["daemon"] = time.monotonic() - up
        with contextlib.closing(daemon.client()) as client:
            daemon.version = str(client.version().get("Version", "?"))
            imported = time.monotonic()
            tag = image_tag()
            repository, _, version = tag.partition(":")
            client.api.import_image(src=str(tarball), repository=repository, tag=version)
            client.images.get(tag)
            daemon.image = tag
            daemon.timings_s["image import"] = time.monotonic() - imported
    except BaseException as exc:
        daemon.close()
        tail = (
            (workdir / "dockerd.log").read_text(errors="replace")[-1500:]
            if workdir.exists()
            else ""
        )
        raise RuntimeError(f"private dockerd did not start: {exc}\n{tail}") from exc
    if built_s > 1.0:
        daemon.timings_s["rootfs build"] = built_s
    return daemon


def _answers(daemon: PrivateDockerd) -> bool:
    if daemon.process.poll() is not None:
        raise RuntimeError(f"dockerd exited with {daemon.process.returncode}")
    if not daemon.socket_path.exists():
        return False
    try:
        with contextlib.closing(daemon.client()) as client:
            return bool(client.ping())
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return False


# --- one daemon per session, started on first use --------------------------------------------

_shared: PrivateDockerd | None = None
_failure: str | None = None


def shared_private_dockerd() -> PrivateDockerd:
    """The session's private dockerd; ``pytest.skip`` (with the reason) if it cannot run here."""
    global _shared, _failure
    if _shared is None and _failure is None:
        try:
            _shared = start_private_dockerd()
            record("sandbox backends", f"docker on a {_shared.describe()}")
        except (FileNotFoundError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
            _failure = str(exc).splitlines()[0][:300]
    if _shared is None:
        pytest.skip(f"docker: no private dockerd: {_failure}")
    return _shared


def stop_shared_dockerd() -> list[str]:
    """Stop the session's daemon if it was started; returns the containers the run leaked."""
    global _shared
    daemon, _shared = _shared, None
    if daemon is None:
        return []
    try:
        return daemon.leaked_containers()
    finally:
        daemon.close()


def docker_test_settings(state_dir: Path) -> DockerSettings:
    """Docker backend settings on the session's daemon, labelling containers with the run id."""
    daemon = shared_private_dockerd()
    return DockerSettings(
        docker_host=daemon.docker_host,
        image=daemon.image,
        state_dir=state_dir,
        labels={RUN_LABEL: RUN_ID},
        workspace_check_interval_s=0.2,
    )


@pytest.fixture(scope="session")
def docker_backend() -> PrivateDockerd:
    """The session's private dockerd with the sandbox image (skips with the reason if none)."""
    return shared_private_dockerd()


@pytest.fixture(scope="session", autouse=True)
def _stop_private_dockerd() -> Iterator[None]:
    """Stops the session's daemon if any test started it; fails the run on leaked containers."""
    yield
    leaked = stop_shared_dockerd()
    assert not leaked, f"sandbox containers leaked by this run: {leaked}"
