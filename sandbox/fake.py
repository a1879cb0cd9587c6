"""The fake backend: the real supervisor as a plain host subprocess, WITHOUT isolation.

It satisfies the non-security half of the contract (commands, timeouts, output caps,
processes, pty, daemons killed) so layers above the library can be tested without root.
Commands run as the calling user with the host's filesystem: tests only, which is why
``FakeSettings`` refuses to validate without ``allow_unisolated=True``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import tempfile
from pathlib import Path
from typing import Any

from sandbox import supervisor
from sandbox.settings import FakeSettings
from sandbox.supervised import Launched, RunningSandbox, SupervisedBackend
from sandbox.types import SandboxSpec

__all__ = ["FakeBackend"]

_SOURCE = inspect.getsource(supervisor)


class FakeBackend(SupervisedBackend):
    name = "fake"

    def __init__(self, settings: FakeSettings) -> None:
        super().__init__()
        self._settings = settings

    async def _launch(self, sandbox_id: str, spec: SandboxSpec) -> tuple[Launched, Any]:
        empty = tempfile.TemporaryDirectory(prefix=f"{sandbox_id}-")
        scratch = Path(empty.name) / "tmp"  # $TMPDIR: the fake cannot hide the host's /tmp.
        scratch.mkdir()
        (Path(empty.name) / "workspace").mkdir()
        limits = spec.limits
        config = {
            "workspace": str(Path(empty.name) / "workspace"),
            "wipe_dirs": [str(scratch)],
            "own_pid_namespace": False,
            "base_env": {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
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
        process = await asyncio.create_subprocess_exec(
            str(self._settings.python_path),
            "-I",
            "-S",
            "-c",
            _SOURCE,
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={},
            cwd=empty.name,
        )
        return Launched(process, "none"), empty

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
        await sandbox.channel.call("configure", config={"workspace": str(workspace_dir)})

    async def _detach(self, sandbox: RunningSandbox) -> None:
        empty = Path(sandbox.backend_state.name) / "workspace"
        await sandbox.channel.call("configure", config={"workspace": str(empty)})
