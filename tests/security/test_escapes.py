"""Every attack in ``attacks.ATTACKS`` fails against every real backend, as library calls."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sandbox import ExecRequest, SandboxBackend, SandboxSpec
from tests.security.attacks import ATTACKS, ESCAPED, Attack, AttackContext


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.name for attack in ATTACKS])
async def test_attack_fails(
    real_backend: SandboxBackend, workspace: Path, attack_context: AttackContext, attack: Attack
) -> None:
    info = await real_backend.create(SandboxSpec(workspace_dir=workspace))
    started = time.monotonic()
    result = await real_backend.exec(
        info.sandbox_id, ExecRequest(shell=attack.script(attack_context), timeout_s=10)
    )
    assert ESCAPED not in result.stdout, result.stdout.decode(errors="replace")
    assert not result.timed_out
    assert time.monotonic() - started < attack.max_duration_s


async def test_host_side_adopt_never_follows_planted_links(
    real_backend: SandboxBackend, workspace: Path
) -> None:
    """Links planted in a workspace survive a re-attach without changing host files."""
    info = await real_backend.create(SandboxSpec(workspace_dir=workspace))
    planted = "ln -s /etc/shadow shadow; ln -s /etc etc-dir; mkdir d; ln -s /etc/passwd d/p"
    assert (await real_backend.exec(info.sandbox_id, ExecRequest(shell=planted))).exit_code == 0
    (workspace / "hard").unlink(missing_ok=True)
    os.link("/etc/hostname", workspace / "hard")  # As if the host had put it there.
    before = {p: os.stat(p) for p in ("/etc/shadow", "/etc/passwd", "/etc/hostname", "/etc")}
    await real_backend.detach_workspace(info.sandbox_id)
    await real_backend.attach_workspace(info.sandbox_id, workspace)
    for path, stat in before.items():
        now = os.stat(path)
        assert (now.st_uid, now.st_gid, now.st_mode) == (stat.st_uid, stat.st_gid, stat.st_mode)
    result = await real_backend.exec(
        info.sandbox_id, ExecRequest(shell="echo x >> hard 2>/dev/null && echo ESCAPED; true")
    )
    assert ESCAPED not in result.stdout
    (workspace / "hard").unlink()
