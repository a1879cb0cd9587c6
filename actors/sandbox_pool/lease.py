"""The port between a workspace's single writer and the sandboxes of its node.

A ``Lease`` binds one warm sandbox to one workspace's working tree (shown at /workspace).
``SandboxLeaser`` is what a WorkspaceSession talks to: the in-process ``SandboxPoolCore``
(tests, bare uvicorn) or ``RaySandboxLeaser`` (the node's ``SandboxPool`` actor).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sandbox import (
    ExecEvent,
    ExecRequest,
    ExecResult,
    ProcessInfo,
    ProcessLogs,
    SandboxError,
    SandboxUnavailable,
    StartRequest,
)

__all__ = ["Lease", "LeaseExpired", "SandboxLeaser", "UnavailableLeaser", "unavailable_detail"]


@dataclass(frozen=True, slots=True)
class Lease:
    lease_id: str
    sandbox_id: str
    workspace_id: str


class LeaseExpired(SandboxError):
    """The lease ended (idle backstop, pool restart, crash); the command never ran."""

    def __init__(self, lease_id: str) -> None:
        super().__init__(lease_id)
        self.lease_id = lease_id

    def __str__(self) -> str:
        return f"sandbox lease {self.lease_id!r} has ended"


class SandboxLeaser(Protocol):
    # A held lease with no calls for this long is released (its processes are killed).
    idle_timeout_s: float

    async def lease(self, workspace_id: str, tree_dir: Path) -> Lease:
        """The workspace's lease: its current one, or a warm sandbox bound to ``tree_dir``."""
        ...

    async def release(self, lease: Lease) -> None:
        """End the lease: the sandbox is reset and goes back to the pool (or is replaced)."""
        ...

    async def exec(self, lease: Lease, request: ExecRequest) -> ExecResult: ...

    def exec_stream(self, lease: Lease, request: ExecRequest) -> AsyncIterator[ExecEvent]: ...

    async def start_process(self, lease: Lease, request: StartRequest) -> ProcessInfo: ...

    async def list_processes(self, lease: Lease) -> list[ProcessInfo]: ...

    async def read_logs(self, lease: Lease, process_id: str, offset: int = 0) -> ProcessLogs: ...

    def follow_process(
        self, lease: Lease, process_id: str, offset: int = 0
    ) -> AsyncIterator[bytes]: ...

    async def write_stdin(self, lease: Lease, process_id: str, data: bytes) -> None: ...

    async def resize_terminal(
        self, lease: Lease, process_id: str, *, cols: int, rows: int
    ) -> None: ...

    async def kill_process(self, lease: Lease, process_id: str) -> bool: ...


class UnavailableLeaser:
    """Stands in when this host cannot run sandboxes: every call says why (503 at the edge)."""

    idle_timeout_s = 600.0

    def __init__(self, backend: str, reason: str) -> None:
        self.backend = backend
        self.reason = reason

    def _refuse(self) -> SandboxUnavailable:
        return SandboxUnavailable(self.backend, self.reason)

    async def lease(self, workspace_id: str, tree_dir: Path) -> Lease:
        raise self._refuse()

    async def release(self, lease: Lease) -> None:
        return None

    async def exec(self, lease: Lease, request: ExecRequest) -> ExecResult:
        raise self._refuse()

    async def exec_stream(self, lease: Lease, request: ExecRequest) -> AsyncIterator[ExecEvent]:
        raise self._refuse()
        yield  # pragma: no cover

    async def start_process(self, lease: Lease, request: StartRequest) -> ProcessInfo:
        raise self._refuse()

    async def list_processes(self, lease: Lease) -> list[ProcessInfo]:
        raise self._refuse()

    async def read_logs(self, lease: Lease, process_id: str, offset: int = 0) -> ProcessLogs:
        raise self._refuse()

    async def follow_process(
        self, lease: Lease, process_id: str, offset: int = 0
    ) -> AsyncIterator[bytes]:
        raise self._refuse()
        yield  # pragma: no cover

    async def write_stdin(self, lease: Lease, process_id: str, data: bytes) -> None:
        raise self._refuse()

    async def resize_terminal(self, lease: Lease, process_id: str, *, cols: int, rows: int) -> None:
        raise self._refuse()

    async def kill_process(self, lease: Lease, process_id: str) -> bool:
        raise self._refuse()


def unavailable_detail(exc: SandboxUnavailable) -> str:
    """The operator's one-line fix for a backend that cannot run here."""
    if exc.backend == "bubblewrap" and "bwrap" in exc.reason:
        return "install bubblewrap"
    return exc.reason
