"""Launch chains of bubblewrap sandboxes, prepared before a create needs them.

A launch is: a slot and cgroups on the host, then ``sh`` (root) entering the cgroups, then
setpriv -> bwrap -> the supervisor. Everything up to bwrap depends only on the sandbox's
limits and network flag, and entering a cgroup v1 waits out an RCU grace period (~10-15 ms
here), so the backend keeps ``prepared_launches`` chains ready: the shell has entered its
cgroups and waits on its stdin. ``Launch.start`` writes the supervisor's config into the code
memfd the chain inherited and sends a newline; the shell then execs setpriv. A create that
matches no prepared chain prepares one on the spot: the same steps, on its path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox import mounts
from sandbox.bubblewrap import seccomp
from sandbox.bubblewrap.command import bwrap_argv
from sandbox.cgroups import CgroupMode, SandboxCgroup
from sandbox.errors import SandboxCreateFailed, SandboxError
from sandbox.launch import CompiledSupervisor
from sandbox.settings import BubblewrapSettings
from sandbox.supervised import new_sandbox_id
from sandbox.types import SandboxLimits, SandboxSpec

__all__ = ["Launch", "Launcher"]

LaunchKey = tuple[SandboxLimits, bool]


@dataclass
class Launch:
    """One chain, its shell waiting on stdin inside the sandbox's cgroups."""

    sandbox_id: str
    key: LaunchKey
    sandbox_dir: Path
    slot: Path
    cgroup: SandboxCgroup | None
    process: asyncio.subprocess.Process
    info_fd: int  # read end of bwrap's --info-fd
    code_fd: int  # the host's handle on the memfd the supervisor reads
    exec_socket: socket.socket  # the host's end of the exec channel
    exec_fd: int  # the supervisor's end, as numbered in the sandbox

    def start(self, supervisor: CompiledSupervisor, config: dict[str, Any]) -> None:
        supervisor.write_config(self.code_fd, config | {"exec_fd": self.exec_fd})
        os.close(self.code_fd)
        self.code_fd = -1
        assert self.process.stdin is not None
        self.process.stdin.write(b"\n")

    async def discard(self) -> None:
        """Kill a chain that was never started and release what it held."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()
        for fd in (self.info_fd, self.code_fd):
            if fd >= 0:
                os.close(fd)
        self.exec_socket.close()
        if self.cgroup is not None:
            await asyncio.to_thread(self.cgroup.remove)
        await asyncio.to_thread(mounts.remove_slot, self.sandbox_dir)


class Launcher:
    """Prepares launches and keeps up to ``settings.prepared_launches`` of them ready."""

    def __init__(
        self,
        settings: BubblewrapSettings,
        mode: CgroupMode,
        supervisor: CompiledSupervisor,
    ) -> None:
        self._settings = settings
        self._mode = mode
        self._supervisor = supervisor
        self._program = seccomp.filter_program()
        self._ready: list[Launch] = []
        self._preparing = 0
        self._closed = False

    async def take(self, spec: SandboxSpec) -> Launch:
        """A prepared launch for ``spec`` if one is ready, else a fresh one."""
        key = (spec.limits, spec.network)
        for launch in list(self._ready):
            if launch.process.returncode is not None:  # Its shell died: never use it.
                self._ready.remove(launch)
                await launch.discard()
            elif launch.key == key:
                self._ready.remove(launch)
                return launch
        return await self.prepare(spec)

    def replenish(
        self, spec: SandboxSpec, spawn: Callable[[Coroutine[Any, Any, None]], None]
    ) -> None:
        """Start preparing a launch like ``spec``'s if fewer than wanted are ready."""
        if self._closed or len(self._ready) + self._preparing >= self._settings.prepared_launches:
            return
        self._preparing += 1
        spawn(self._prepare_spare(spec))

    async def _prepare_spare(self, spec: SandboxSpec) -> None:
        try:
            launch = await self.prepare(spec)
        except SandboxError:
            return  # The next create prepares its own launch and reports the failure.
        finally:
            self._preparing -= 1
        if self._closed:
            await launch.discard()
            return
        self._ready.append(launch)
        while len(self._ready) > self._settings.prepared_launches:  # Oldest (other specs) go.
            await self._ready.pop(0).discard()

    async def prepare(self, spec: SandboxSpec) -> Launch:
        sandbox_id = new_sandbox_id()
        sandbox_dir = self._settings.state_dir / sandbox_id
        cgroup = None
        fds: list[int] = []
        host_end, sandbox_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Off the event loop: cgroup v1 files are slow to open (~0.14 ms each).
            slot, cgroup = await asyncio.to_thread(self._host_side, sandbox_id, spec)
            info_read, info_write = os.pipe()
            fds += [info_read, info_write, seccomp.seccomp_fd(self._program)]
            fds.append(self._supervisor.code_fd())
            argv = bwrap_argv(
                self._settings,
                spec,
                slot=slot,
                cgroup_procs=cgroup.procs_files if cgroup else [],
                info_fd=info_write,
                seccomp_fd=fds[2],
                supervisor=self._supervisor.argv(fds[3]),
            )
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={},
                pass_fds=(*fds[1:], sandbox_end.fileno()),
                cwd="/",
            )
        except BaseException as exc:
            for fd in fds:
                os.close(fd)
            host_end.close()
            if cgroup is not None:
                cgroup.remove()
            mounts.remove_slot(sandbox_dir)
            if isinstance(exc, OSError):
                raise SandboxCreateFailed("bubblewrap", str(exc)) from exc
            raise
        finally:
            exec_fd = sandbox_end.fileno()
            sandbox_end.close()
        for fd in fds[1:3]:  # The chain holds them now; we keep the info and code fds.
            os.close(fd)
        key = (spec.limits, spec.network)
        return Launch(
            sandbox_id, key, sandbox_dir, slot, cgroup, process, fds[0], fds[3], host_end, exec_fd
        )

    def _host_side(self, sandbox_id: str, spec: SandboxSpec) -> tuple[Path, SandboxCgroup | None]:
        slot = mounts.create_slot(self._settings.state_dir / sandbox_id)
        if self._mode == "rlimit":
            return slot, None
        try:
            cgroup = SandboxCgroup.create(
                self._mode, self._settings.cgroup_name, sandbox_id, spec.limits
            )
        except BaseException:
            mounts.remove_slot(self._settings.state_dir / sandbox_id)
            raise
        return slot, cgroup

    async def aclose(self) -> None:
        """Discard every prepared launch (call once no task can prepare more)."""
        self._closed = True
        while self._ready:
            await self._ready.pop().discard()
