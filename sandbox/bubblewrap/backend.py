"""The bubblewrap backend: each sandbox is a hardened bwrap running the supervisor.

Must run as host root (it creates cgroups and mounts, then drops to the sandbox uid before
bwrap ever runs: bwrap itself never runs as root). Destroy kills the sandbox's pid 1,
learned from ``--info-fd``, which takes the whole pid namespace with it, daemons included.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import supervisor
from sandbox.bubblewrap import mounts, seccomp
from sandbox.bubblewrap.cgroups import CgroupMode, SandboxCgroup, detect_mode
from sandbox.bubblewrap.command import bwrap_argv, supervisor_config
from sandbox.channel import Frame
from sandbox.errors import SandboxCreateFailed, SandboxLimitInvalid, SandboxUnavailable
from sandbox.settings import BubblewrapSettings
from sandbox.supervised import Launched, RunningSandbox, SupervisedBackend
from sandbox.types import KilledReason, SandboxSpec

__all__ = ["BubblewrapBackend", "unavailable_reason"]

_SOURCE = inspect.getsource(supervisor)


def unavailable_reason(settings: BubblewrapSettings) -> str | None:
    """Why this host cannot run the backend, or None when it can."""
    if os.geteuid() != 0:
        return "must run as root (it drops to the sandbox uid itself)"
    for path in (settings.bwrap_path, settings.setpriv_path, settings.python_path):
        if not path.exists():
            return f"{path} is missing"
    return None


@dataclass
class _State:
    sandbox_dir: Path
    slot: Path
    cgroup: SandboxCgroup | None
    info_fd: int
    pid1: int = 0
    oom_kills_seen: int = 0
    watchdog: asyncio.Event = field(default_factory=asyncio.Event)


class BubblewrapBackend(SupervisedBackend):
    name = "bubblewrap"

    def __init__(self, settings: BubblewrapSettings) -> None:
        super().__init__()
        reason = unavailable_reason(settings)
        if reason is not None:
            raise SandboxUnavailable("bubblewrap", reason)
        self._settings = settings
        self._mode: CgroupMode = "rlimit" if settings.cgroups == "off" else detect_mode()
        self._program = seccomp.filter_program()
        settings.state_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
        settings.state_dir.chmod(0o711)  # Traversable by bwrap (sandbox uid), not listable.

    @property
    def limit_enforcement(self) -> CgroupMode:
        return self._mode

    async def _launch(self, sandbox_id: str, spec: SandboxSpec) -> tuple[Launched, Any]:
        if spec.network and not self._settings.allow_network:
            raise SandboxLimitInvalid("network", True, "network is disabled in the settings")
        sandbox_dir = self._settings.state_dir / sandbox_id
        slot = mounts.create_slot(sandbox_dir)
        cgroup = None
        try:
            if self._mode != "rlimit":
                cgroup = SandboxCgroup.create(
                    self._mode, self._settings.cgroup_name, sandbox_id, spec.limits
                )
            info_read, info_write = os.pipe()
            filter_fd = seccomp.seccomp_fd(self._program)
            config = supervisor_config(spec, rlimit_fallback=cgroup is None)
            argv = bwrap_argv(
                self._settings,
                spec,
                slot=slot,
                cgroup_procs=cgroup.procs_files if cgroup else [],
                info_fd=info_write,
                seccomp_fd=filter_fd,
                supervisor_source=_SOURCE,
                config=config,
            )
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env={},
                    pass_fds=(info_write, filter_fd),
                    cwd="/",
                )
            finally:
                os.close(info_write)
                os.close(filter_fd)
        except OSError as exc:
            if cgroup is not None:
                cgroup.remove()
            mounts.remove_slot(sandbox_dir)
            raise SandboxCreateFailed("bubblewrap", str(exc)) from exc
        state = _State(sandbox_dir, slot, cgroup, info_read)
        return Launched(process, self._mode), state

    async def _ready(self, sandbox: RunningSandbox) -> None:
        state: _State = sandbox.backend_state
        os.set_blocking(state.info_fd, False)
        try:
            info = json.loads(os.read(state.info_fd, 4096))
            state.pid1 = int(info["child-pid"])
        except (OSError, ValueError, KeyError) as exc:
            raise SandboxCreateFailed("bubblewrap", f"no child pid from --info-fd: {exc}") from exc
        finally:
            os.close(state.info_fd)
        self._spawn(self._watch_workspace(sandbox))

    async def _kill(self, sandbox: RunningSandbox) -> None:
        state: _State = sandbox.backend_state
        state.watchdog.set()
        if state.pid1:
            with contextlib.suppress(ProcessLookupError):
                os.kill(state.pid1, signal.SIGKILL)  # The pid namespace dies with its pid 1.
        if sandbox.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                sandbox.process.kill()
        await sandbox.process.wait()
        if state.cgroup is not None:
            await asyncio.to_thread(state.cgroup.remove)
        mounts.remove_slot(state.sandbox_dir)

    async def _attach(self, sandbox: RunningSandbox, workspace_dir: Path) -> None:
        uid, gid = self._settings.sandbox_uid, self._settings.sandbox_gid
        await asyncio.to_thread(mounts.adopt, workspace_dir, uid, gid)
        mounts.attach(sandbox.backend_state.slot, workspace_dir)

    async def _detach(self, sandbox: RunningSandbox) -> None:
        mounts.detach(sandbox.backend_state.slot)

    def _memory_bytes(self, sandbox: RunningSandbox) -> int | None:
        cgroup = sandbox.backend_state.cgroup
        return cgroup.memory_bytes() if cgroup is not None else None

    def _killed_reason(self, sandbox: RunningSandbox, frame: Frame) -> KilledReason | None:
        state: _State = sandbox.backend_state
        if state.cgroup is not None:
            kills = state.cgroup.oom_kills()
            oom, state.oom_kills_seen = kills > state.oom_kills_seen, kills
            if oom and not frame.get("timed_out"):
                return "memory"
        return super()._killed_reason(sandbox, frame)

    async def _watch_workspace(self, sandbox: RunningSandbox) -> None:
        """Kill every process when the attached workspace grows past its quota."""
        state: _State = sandbox.backend_state
        interval_s = self._settings.workspace_check_interval_s
        quota = sandbox.info.limits.workspace_disk_bytes
        while not state.watchdog.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.watchdog.wait(), interval_s)
            workspace = sandbox.workspace_dir
            if workspace is None or state.watchdog.is_set():
                continue
            used = await asyncio.to_thread(_disk_usage, workspace)
            if used > quota and not state.watchdog.is_set():
                sandbox.quota_exceeded = True
                with contextlib.suppress(Exception):
                    await sandbox.channel.call("reset", keep_scratch=True)


def _disk_usage(root: Path) -> int:
    total = 0
    for _dirpath, _dirnames, filenames, dir_fd in os.fwalk(root, follow_symlinks=False):
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_blocks * 512
    return total
