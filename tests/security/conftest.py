"""The security suite attacks every real backend while watching the host stay healthy."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox import SandboxBackend
from tests.contract.sandbox_backends import (
    REAL_BACKENDS,
    cleanup_run_leftovers,
    open_test_backend,
)
from tests.security.attacks import AttackContext

WATCHED_FILES = ("/etc/shadow", "/etc/passwd", "/proc/sys/kernel/core_pattern")
CANARY = "vibecode-canary-7f3a9c"


@dataclass
class Host:
    canary: subprocess.Popen[bytes]
    listener: socket.socket
    hashes: dict[str, str]
    owners: dict[str, tuple[int, int]]


def _hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    """A canary process, a listening loopback port and the state of sensitive files."""
    os.environ["VIBECODE_SECURITY_CANARY"] = CANARY
    canary = subprocess.Popen(["sleep", "600"])
    listener = socket.create_server(("127.0.0.1", 0))
    watched = Host(
        canary,
        listener,
        {path: _hash(path) for path in WATCHED_FILES},
        {p: (os.stat(p).st_uid, os.stat(p).st_gid) for p in ("/etc/shadow", "/etc/passwd")},
    )
    try:
        yield watched
        assert canary.poll() is None, "the canary process died"
        assert {path: _hash(path) for path in WATCHED_FILES} == watched.hashes
        for path, owner in watched.owners.items():
            assert (os.stat(path).st_uid, os.stat(path).st_gid) == owner
        for directory in ("/", "/etc", "/usr", "/var", "/root", "/opt"):
            assert not Path(directory, ".vibecode-escape").exists()
    finally:
        canary.kill()
        canary.wait()
        listener.close()
        del os.environ["VIBECODE_SECURITY_CANARY"]
        cleanup_run_leftovers()


@pytest.fixture
def attack_context(host: Host, tmp_path: Path) -> AttackContext:
    other = tmp_path / "other-workspace"
    other.mkdir()
    (other / "secret.txt").write_text("another tenant's code\n")
    return AttackContext(
        host_pid=os.getpid(),
        host_port=host.listener.getsockname()[1],
        other_workspace=str(other),
        repo_dir=str(Path(__file__).resolve().parents[2]),
        canary=CANARY,
    )


@pytest.fixture(params=REAL_BACKENDS)
async def real_backend(request: pytest.FixtureRequest) -> AsyncIterator[SandboxBackend]:
    async with open_test_backend(request.param) as backend:
        yield backend


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "main.py").write_text("print('hi')\n")
    return root
