"""A sandbox whose supervisor never answers fails its create in bounded time, and is killed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox import SandboxCreateFailed, SandboxSpec
from sandbox.supervised import Launched, RunningSandbox, SupervisedBackend, new_sandbox_id


class SilentBackend(SupervisedBackend):
    """Launches a real process that reads requests and never answers one."""

    name = "silent"

    def __init__(self) -> None:
        super().__init__()
        self.processes: list[asyncio.subprocess.Process] = []

    async def _launch(self, spec: SandboxSpec) -> tuple[Launched, Any]:
        process = await asyncio.create_subprocess_exec(
            "sleep",
            "60",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self.processes.append(process)
        return Launched(new_sandbox_id(), process, limit_enforcement="none"), None

    async def _ready(self, sandbox: RunningSandbox) -> None:
        return None

    async def _kill(self, sandbox: RunningSandbox) -> None:
        if sandbox.process.returncode is None:
            sandbox.process.kill()
        await sandbox.process.wait()

    async def _attach(self, sandbox: RunningSandbox, workspace_dir: Path) -> None:
        return None

    async def _detach(self, sandbox: RunningSandbox) -> None:
        return None


async def test_a_supervisor_that_never_answers_fails_the_create_and_is_killed() -> None:
    backend = SilentBackend()
    backend.create_timeout_s = 0.3
    async with backend:
        started = time.monotonic()
        with pytest.raises(SandboxCreateFailed, match=r"did not answer within 0\.3 s"):
            await backend.create(SandboxSpec())
        assert time.monotonic() - started < 5
        (process,) = backend.processes
        assert process.returncode is not None  # killed, not left running
