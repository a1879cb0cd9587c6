"""What the bubblewrap and docker backends share beyond the supervisor: the workspace slot, the
memory cgroup and the workspace watchdog.

Both show /workspace from a per-sandbox *slot* on the host (``sandbox/mounts.py``): attaching a
workspace chowns it to the sandbox uid and bind-mounts it on the slot, which propagates into
the running sandbox. Both read the sandbox's memory cgroup for health and to tell an OOM kill,
and both watch the attached workspace's size against its quota.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from sandbox import mounts
from sandbox.cgroups import SandboxCgroup
from sandbox.channel import Frame
from sandbox.errors import SandboxError
from sandbox.supervised import RunningSandbox, SupervisedBackend
from sandbox.types import KilledReason

__all__ = ["SlotState", "SlottedBackend", "disk_usage"]


@dataclass(kw_only=True)
class SlotState:
    """Backend state of one sandbox: its slot, its memory cgroup (if known), its watchdog."""

    sandbox_dir: Path
    slot: Path
    cgroup: SandboxCgroup | None = None
    oom_kills_seen: int = 0
    watchdog: asyncio.Event = field(default_factory=asyncio.Event)


class SlottedBackend(SupervisedBackend):
    def __init__(
        self,
        *,
        state_dir: Path,
        sandbox_uid: int,
        sandbox_gid: int,
        workspace_check_interval_s: float,
    ) -> None:
        super().__init__()
        self._state_dir = state_dir
        self._owner = (sandbox_uid, sandbox_gid)
        self._check_interval_s = workspace_check_interval_s

    async def _closed(self) -> None:
        with contextlib.suppress(OSError):  # Still in use (another backend): keep it.
            self._state_dir.rmdir()

    async def _ready(self, sandbox: RunningSandbox) -> None:
        self._spawn(self._watch_workspace(sandbox))

    def _release(self, state: SlotState) -> None:
        """Stop the watchdog and drop the slot (after the sandbox's processes are gone)."""
        state.watchdog.set()
        if state.cgroup is not None:
            state.cgroup.close()
        mounts.remove_slot(state.sandbox_dir)

    async def _attach(self, sandbox: RunningSandbox, workspace_dir: Path) -> None:
        await asyncio.to_thread(mounts.adopt, workspace_dir, *self._owner)
        mounts.attach(sandbox.backend_state.slot, workspace_dir)

    async def _detach(self, sandbox: RunningSandbox) -> None:
        mounts.detach(sandbox.backend_state.slot)

    def _memory_bytes(self, sandbox: RunningSandbox) -> int | None:
        cgroup = sandbox.backend_state.cgroup
        return cgroup.memory_bytes() if cgroup is not None else None

    def _killed_reason(self, sandbox: RunningSandbox, frame: Frame) -> KilledReason | None:
        state: SlotState = sandbox.backend_state
        if state.cgroup is not None:
            kills = state.cgroup.oom_kills()
            oom, state.oom_kills_seen = kills > state.oom_kills_seen, kills
            if oom and not frame.get("timed_out"):
                return "memory"
        return super()._killed_reason(sandbox, frame)

    async def _watch_workspace(self, sandbox: RunningSandbox) -> None:
        """Kill every process when the attached workspace grows past its quota."""
        state: SlotState = sandbox.backend_state
        quota = sandbox.info.limits.workspace_disk_bytes
        while not state.watchdog.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.watchdog.wait(), self._check_interval_s)
            workspace = sandbox.workspace_dir
            if workspace is None or state.watchdog.is_set():
                continue
            used = await asyncio.to_thread(disk_usage, workspace)
            if used > quota and not state.watchdog.is_set():
                sandbox.quota_exceeded = True
                with contextlib.suppress(SandboxError):  # A crash is the next call's problem.
                    await sandbox.channel.call("reset", keep_scratch=True)


def disk_usage(root: Path) -> int:
    """Bytes allocated under ``root``, never following symlinks."""
    total = 0
    for _dirpath, _dirnames, filenames, dir_fd in os.fwalk(root, follow_symlinks=False):
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_blocks * 512
    return total
