"""Every sandbox backend this machine can run, for the contract and security suites.

A backend joins by adding one entry to ``BACKEND_FACTORIES``: a function returning the
backend (not yet entered) or raising ``pytest.skip`` with the reason it cannot run here.
``REAL_BACKENDS`` names the ones with isolation, which the security suite attacks.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sandbox import BubblewrapSettings, FakeSettings, SandboxBackend
from tests.harness.run import RUN_ID, record

__all__ = ["BACKEND_FACTORIES", "REAL_BACKENDS", "open_test_backend"]

STATE_DIR = Path(tempfile.gettempdir()) / f"vibecode-sandboxes-{RUN_ID}"
CGROUP_NAME = f"vibecode-test-{RUN_ID}"


def _fake() -> SandboxBackend:
    from sandbox.fake import FakeBackend

    return FakeBackend(FakeSettings(allow_unisolated=True))


def bubblewrap_settings() -> BubblewrapSettings:
    return BubblewrapSettings(
        state_dir=STATE_DIR, cgroup_name=CGROUP_NAME, workspace_check_interval_s=0.2
    )


def _bubblewrap() -> SandboxBackend:
    from sandbox.bubblewrap import BubblewrapBackend, unavailable_reason

    settings = bubblewrap_settings()
    reason = unavailable_reason(settings)
    if reason is not None:
        pytest.skip(f"bubblewrap: {reason}")
    backend = BubblewrapBackend(settings)
    record("sandbox backends", f"bubblewrap ({backend.limit_enforcement})")
    return backend


def _docker() -> SandboxBackend:
    from sandbox.docker import DockerBackend, unavailable_reason
    from tests.harness.dockerd import docker_test_settings

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"docker: {reason}")
    return DockerBackend(docker_test_settings(STATE_DIR / "docker"))


BACKEND_FACTORIES: dict[str, Callable[[], SandboxBackend]] = {
    "fake": _fake,
    "bubblewrap": _bubblewrap,
    "docker": _docker,
}
REAL_BACKENDS = ["bubblewrap", "docker"]


@contextlib.asynccontextmanager
async def open_test_backend(name: str) -> AsyncIterator[SandboxBackend]:
    async with BACKEND_FACTORIES[name]() as backend:
        yield backend


def cleanup_run_leftovers() -> None:
    """Remove what the run's sandboxes left empty: its state dir and its cgroups.

    Safe while sandboxes still run (suites call it when their module ends): it only ``rmdir``s
    the known layout (``[backend subdir/]sbx-*/workspace``), never recursing and never
    removing a file, and a slot that is still mounted is busy, so it stays. The backends
    remove their state dir themselves when they close; this catches the rest (a pool killed
    with its actor, the subdir each backend gets). Runs again when the session exits.
    """
    if STATE_DIR.is_dir():
        subdirs = [p for p in STATE_DIR.iterdir() if p.is_dir() and not p.name.startswith("sbx-")]
        for parent in (*subdirs, STATE_DIR):
            for path in (*parent.glob("sbx-*/workspace"), *parent.glob("sbx-*"), parent):
                with contextlib.suppress(OSError):
                    path.rmdir()
    for root in ("/sys/fs/cgroup", *(f"/sys/fs/cgroup/{c}" for c in ("memory", "pids", "cpu"))):
        # Child groups first; a group still in use refuses to go.
        for dirpath, _dirnames, _filenames in os.walk(Path(root, CGROUP_NAME), topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def _at_exit() -> None:
    """Detach the mounts sandboxes of this run left behind (a killed pool cannot), then
    clean up. Nothing of the run runs any more when the interpreter exits."""
    if STATE_DIR.is_dir() and os.geteuid() == 0:
        from sandbox.mounts import unmount_under

        unmount_under(STATE_DIR)
    cleanup_run_leftovers()


atexit.register(_at_exit)
