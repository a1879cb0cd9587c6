"""The fake backend: the real supervisor as a plain host subprocess, WITHOUT isolation.

It satisfies the non-security half of the contract (commands, timeouts, output caps,
processes, pty, daemons killed) so layers above the library can be tested without root.
Commands run as the calling user with the host's filesystem: tests only, which is why
``FakeSettings`` refuses to validate without ``allow_unisolated=True``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from sandbox.launch import PATH, CompiledSupervisor
from sandbox.settings import FakeSettings
from sandbox.supervised import Launched, RunningSandbox, SupervisedBackend, new_sandbox_id
from sandbox.types import SandboxSpec

__all__ = ["FakeBackend"]


class FakeBackend(SupervisedBackend):
    name = "fake"

    def __init__(self, settings: FakeSettings) -> None:
        super().__init__()
        self._settings = settings
        self._supervisor = CompiledSupervisor(settings.python_path, backend=self.name)

    async def _launch(self, spec: SandboxSpec) -> tuple[Launched, Any]:
        sandbox_id = new_sandbox_id()
        empty = tempfile.TemporaryDirectory(prefix=f"{sandbox_id}-")
        scratch = Path(empty.name) / "tmp"  # $TMPDIR: the fake cannot hide the host's /tmp.
        scratch.mkdir()
        (Path(empty.name) / "empty").mkdir()
        _point(Path(empty.name) / "workspace", Path(empty.name) / "empty")
        limits = spec.limits
        config = {
            "workspace": str(Path(empty.name) / "workspace"),
            "wipe_dirs": [str(scratch)],
            "own_pid_namespace": False,
            "base_env": {
                "PATH": PATH,
                "LANG": "C.UTF-8",
                "HOME": str(scratch),
                "TMPDIR": str(scratch),
                "PYTHONDONTWRITEBYTECODE": "1",  # as the real backends (see bubblewrap/command.py)
                **spec.env,
            },
            "rlimits": {"cpu": limits.cpu_time_s, "fsize": limits.file_size_bytes},
            "output_bytes": limits.output_bytes,
            "log_bytes": limits.output_bytes,
        }
        host_end, sandbox_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        code_fd = self._supervisor.code_fd()
        self._supervisor.write_config(code_fd, config | {"exec_fd": sandbox_end.fileno()})
        try:
            process = await asyncio.create_subprocess_exec(
                *self._supervisor.argv(code_fd),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={},
                pass_fds=(code_fd, sandbox_end.fileno()),
                cwd=empty.name,
            )
        except BaseException:
            host_end.close()
            empty.cleanup()
            raise
        finally:
            os.close(code_fd)
            sandbox_end.close()
        return Launched(sandbox_id, process, "none", host_end), empty

    async def _ready(self, sandbox: RunningSandbox) -> None:
        return None

    async def _kill(self, sandbox: RunningSandbox) -> None:
        if sandbox.process.returncode is None:
            try:
                await sandbox.channel.call("reset", keep_scratch=True)
            finally:
                sandbox.process.kill()
        await sandbox.process.wait()
        sandbox.backend_state.cleanup()

    async def _attach(self, sandbox: RunningSandbox, workspace_dir: Path) -> None:
        _point(Path(sandbox.backend_state.name) / "workspace", workspace_dir)

    async def _detach(self, sandbox: RunningSandbox) -> None:
        root = Path(sandbox.backend_state.name)
        _point(root / "workspace", root / "empty")


def _point(link: Path, target: Path) -> None:
    """Make ``link`` (the supervisor's workspace path) a symlink to ``target``, atomically:
    each command resolves it when it starts."""
    staged = link.with_name(link.name + ".new")
    staged.unlink(missing_ok=True)
    staged.symlink_to(target)
    staged.replace(link)
