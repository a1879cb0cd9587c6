"""The sandbox port: what every backend (bubblewrap, docker, fake) implements.

A backend is an async context manager: entering starts its background work, leaving
destroys every sandbox it still holds. Methods taking a ``sandbox_id`` raise
``SandboxNotFound`` for an unknown id and ``SandboxCrashed`` when the sandbox died under
them; a failing user command is an ``ExecResult``, never an exception.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from sandbox.types import (
    ExecEvent,
    ExecRequest,
    ExecResult,
    ProcessInfo,
    ProcessLogs,
    SandboxHealth,
    SandboxInfo,
    SandboxSpec,
    StartRequest,
)

__all__ = ["SandboxBackend"]


@runtime_checkable
class SandboxBackend(Protocol):
    name: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def create(self, spec: SandboxSpec) -> SandboxInfo:
        """Start a sandbox and return once it accepts commands."""
        ...

    async def attach_workspace(self, sandbox_id: str, workspace_dir: Path) -> None:
        """Show ``workspace_dir`` at /workspace (replacing what was there), for warm pools."""
        ...

    async def detach_workspace(self, sandbox_id: str) -> None:
        """Kill every process and show an empty /workspace again. No-op when none is attached."""
        ...

    async def exec(self, sandbox_id: str, request: ExecRequest) -> ExecResult:
        """Run one command to completion (or its timeout)."""
        ...

    def exec_stream(self, sandbox_id: str, request: ExecRequest) -> AsyncIterator[ExecEvent]:
        """Like ``exec``, yielding ``OutputChunk``s as they come, then one ``ExecResult``
        (whose stdout/stderr are empty: the chunks carried them)."""
        ...

    async def start_process(self, sandbox_id: str, request: StartRequest) -> ProcessInfo:
        """Start a long-running process (optionally on a pty); it runs until killed or reset."""
        ...

    async def list_processes(self, sandbox_id: str) -> list[ProcessInfo]: ...

    async def read_logs(self, sandbox_id: str, process_id: str, offset: int = 0) -> ProcessLogs:
        """Output of a started process from ``offset``; raises ``ProcessNotFound``."""
        ...

    def follow_process(
        self, sandbox_id: str, process_id: str, offset: int = 0
    ) -> AsyncIterator[bytes]:
        """Output of a started process from ``offset`` as it comes; ends when it exits."""
        ...

    async def write_stdin(self, sandbox_id: str, process_id: str, data: bytes) -> None:
        """Send bytes to a started process (a terminal's keystrokes)."""
        ...

    async def resize_terminal(
        self, sandbox_id: str, process_id: str, *, cols: int, rows: int
    ) -> None: ...

    async def kill_process(self, sandbox_id: str, process_id: str) -> bool:
        """Kill a started process and everything it spawned. False if it had already ended."""
        ...

    async def reset(self, sandbox_id: str) -> None:
        """Make the sandbox as good as new for the next lease: kill every process, wipe /tmp
        and /dev/shm, detach the workspace."""
        ...

    async def health(self, sandbox_id: str) -> SandboxHealth:
        """Never raises for a known id: a dead sandbox reports ``alive=False``."""
        ...

    async def destroy(self, sandbox_id: str) -> bool:
        """Kill the sandbox and everything in it. False if the sandbox did not exist."""
        ...
