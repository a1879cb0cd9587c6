"""The pool's value types and the sandbox settings the composition root resolves."""

from __future__ import annotations

import pickle
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.sandbox_pool import Lease, LeaseExpired
from actors.sandbox_pool.lease import unavailable_detail
from actors.workspace.api import ExecOutcome, SyncReport
from cluster.settings import Settings
from sandbox import BubblewrapSettings, ExecResult, SandboxUnavailable
from tests.harness.run import RUN_ID


def test_values_and_errors_cross_processes() -> None:
    error = pickle.loads(pickle.dumps(LeaseExpired("lease-1")))
    assert isinstance(error, LeaseExpired)
    assert error.lease_id == "lease-1"
    outcome = ExecOutcome(ExecResult(exit_code=0, duration_ms=1.0), SyncReport(2, ("a",)))
    assert pickle.loads(pickle.dumps(outcome)) == outcome
    lease = Lease("lease-1", "sbx-1", "ws")
    assert pickle.loads(pickle.dumps(lease)) == lease


def test_missing_bubblewrap_is_explained_in_one_line() -> None:
    missing = SandboxUnavailable("bubblewrap", "/usr/bin/bwrap is missing")
    assert unavailable_detail(missing) == "install bubblewrap"
    not_root = SandboxUnavailable("bubblewrap", "must run as root")
    assert unavailable_detail(not_root) == "must run as root"


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can traverse to (pytest's tmp_path is under a 0700 dir)."""
    path = Path(tempfile.mkdtemp(prefix=f"vc-settings-{RUN_ID}-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_development_keeps_sandbox_state_under_the_data_dir(open_dir: Path) -> None:
    tmp_path = open_dir
    data_dir = tmp_path / "data"
    resolved = Settings(data_dir=data_dir).resolved()
    backend = resolved.sandbox.backend
    assert isinstance(backend, BubblewrapSettings)
    assert backend.state_dir == data_dir.resolve() / "sandboxes"
    # Unless the sandbox uid could not traverse to it: then the default stays.
    tmp_path.chmod(0o700)
    try:
        kept = Settings(data_dir=data_dir).resolved().sandbox.backend
        assert isinstance(kept, BubblewrapSettings)
        assert kept.state_dir == BubblewrapSettings().state_dir
    finally:
        tmp_path.chmod(0o755)
    chosen = Settings(
        data_dir=data_dir, sandbox={"backend": {"kind": "bubblewrap", "state_dir": "/srv/sbx"}}
    ).resolved()
    assert chosen.sandbox.backend.state_dir == Path("/srv/sbx")  # type: ignore[union-attr]
