"""Mounts a killed pool leaves on the host are released before the next local start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox import release_host_mounts
from sandbox.mounts import attach, create_slot
from sandbox.settings import BubblewrapSettings, SandboxSettings


def mounted_under(root: Path) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [p for p in points if p.startswith(str(root))]


@pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root, as sandboxes do")
def test_left_over_slots_and_workspaces_are_detached(tmp_path: Path) -> None:
    state_dir = tmp_path / "sandboxes"
    state_dir.mkdir()
    workspace = tmp_path / "tree"
    workspace.mkdir()
    (workspace / "file.txt").write_text("kept\n")
    for name in ("sbx-a", "sbx-b"):
        attach(create_slot(state_dir / name), workspace)
    assert len(mounted_under(state_dir)) >= 4

    settings = SandboxSettings(backend=BubblewrapSettings(state_dir=state_dir))
    assert release_host_mounts(settings) >= 4
    assert mounted_under(state_dir) == []
    assert (workspace / "file.txt").read_text() == "kept\n"
