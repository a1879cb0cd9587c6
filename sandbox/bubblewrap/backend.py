"""The bubblewrap backend: each sandbox is a hardened bwrap running the supervisor.

Must run as host root (it creates cgroups and mounts, then drops to the sandbox uid before
bwrap ever runs: bwrap itself never runs as root). Destroy kills the sandbox's pid 1,
learned from ``--info-fd``, which takes the whole pid namespace with it, daemons included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from dataclasses import dataclass
from typing import Any

from sandbox.bubblewrap.launcher import Launcher
from sandbox.cgroups import CgroupMode, detect_mode
from sandbox.errors import SandboxCreateFailed, SandboxLimitInvalid, SandboxUnavailable
from sandbox.launch import CompiledSupervisor, supervisor_config
from sandbox.settings import BubblewrapSettings
from sandbox.slotted import SlotState, SlottedBackend
from sandbox.supervised import Launched, RunningSandbox
from sandbox.types import SandboxSpec

__all__ = ["BubblewrapBackend", "unavailable_reason"]


def unavailable_reason(settings: BubblewrapSettings) -> str | None:
    """Why this host cannot run the backend, or None when it can."""
    if os.geteuid() != 0:
        return "must run as root (it drops to the sandbox uid itself)"
    for path in (settings.bwrap_path, settings.setpriv_path, settings.python_path):
        if not path.exists():
            return f"{path} is missing"
    return None


@dataclass(kw_only=True)
class _State(SlotState):
    info_fd: int
    spec: SandboxSpec
    pid1: int = 0


class BubblewrapBackend(SlottedBackend):
    name = "bubblewrap"

    def __init__(self, settings: BubblewrapSettings) -> None:
        super().__init__(
            state_dir=settings.state_dir,
            sandbox_uid=settings.sandbox_uid,
            sandbox_gid=settings.sandbox_gid,
            workspace_check_interval_s=settings.workspace_check_interval_s,
        )
        reason = unavailable_reason(settings)
        if reason is not None:
            raise SandboxUnavailable("bubblewrap", reason)
        self._settings = settings
        self.create_timeout_s = settings.create_timeout_s
        self._mode: CgroupMode = "rlimit" if settings.cgroups == "off" else detect_mode()
        self._supervisor = CompiledSupervisor(settings.python_path, backend=self.name)
        self._launcher = Launcher(settings, self._mode, self._supervisor)
        settings.state_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
        settings.state_dir.chmod(0o711)  # Traversable by bwrap (sandbox uid), not listable.

    @property
    def limit_enforcement(self) -> CgroupMode:
        return self._mode

    async def _closed(self) -> None:
        try:
            await self._launcher.aclose()
        finally:
            await super()._closed()

    async def _launch(self, spec: SandboxSpec) -> tuple[Launched, Any]:
        if spec.network and not self._settings.allow_network:
            raise SandboxLimitInvalid("network", True, "network is disabled in the settings")
        launch = await self._launcher.take(spec)
        config = supervisor_config(spec, rlimit_fallback=launch.cgroup is None)
        try:
            launch.start(self._supervisor, config)
        except OSError as exc:
            await launch.discard()
            raise SandboxCreateFailed("bubblewrap", str(exc)) from exc
        state = _State(
            sandbox_dir=launch.sandbox_dir,
            slot=launch.slot,
            cgroup=launch.cgroup,
            info_fd=launch.info_fd,
            spec=spec,
        )
        launched = Launched(launch.sandbox_id, launch.process, self._mode, launch.exec_socket)
        return launched, state

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
            state.info_fd = -1
        await super()._ready(sandbox)
        # Off this create's path (it has its answer): ready the next one's launch chain.
        self._launcher.replenish(state.spec, self._spawn)

    async def _kill(self, sandbox: RunningSandbox) -> None:
        state: _State = sandbox.backend_state
        state.watchdog.set()
        if state.info_fd >= 0:  # It never got ready.
            os.close(state.info_fd)
            state.info_fd = -1
        if state.pid1:
            with contextlib.suppress(ProcessLookupError):
                os.kill(state.pid1, signal.SIGKILL)  # The pid namespace dies with its pid 1.
        if sandbox.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                sandbox.process.kill()
        await sandbox.process.wait()
        if state.cgroup is not None:
            await asyncio.to_thread(state.cgroup.remove)
        self._release(state)
