"""The sandbox half of a workspace session: commands, processes, and syncing what they changed.

Commands in a sandbox are writes too: ``exec`` leases a sandbox bound to the working tree under
the session's write lock, runs, and syncs what changed into one version (``sync.py`` decides
what may be versioned). A lease is held between calls only while started processes may run.
``WorkspaceSession`` inherits these operations; they use its lock, tree and ``_commit``.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

import structlog
from sqlalchemy.exc import SQLAlchemyError

from actors.sandbox_pool.lease import Lease, LeaseExpired, SandboxLeaser, UnavailableLeaser
from actors.workspace.api import (
    Author,
    ExecOutcome,
    InvalidPath,
    QuotaExceeded,
    SyncReport,
    VersionInfo,
    WorkspaceError,
)
from actors.workspace.manifest import Entry, Manifest
from actors.workspace.preconditions import check_file_size
from actors.workspace.settings import WorkspaceSettings
from actors.workspace.sync import plan_sync
from actors.workspace.tree import WorkingTree
from sandbox import (
    ExecRequest,
    OutputChunk,
    ProcessInfo,
    ProcessLogs,
    ProcessNotFound,
    SandboxCrashed,
    SandboxError,
    SandboxNotFound,
    StartRequest,
)
from state.errors import StateError
from state.threads import run_sync

__all__ = ["NO_SANDBOXES", "SandboxOperations", "SessionHooks"]

log = structlog.get_logger("actors.workspace")

_T = TypeVar("_T")
NO_SANDBOXES = UnavailableLeaser("none", "no sandbox backend is configured for this host")
_MESSAGE_COMMAND_CHARS = 72
_KILL_SETTLE_S = 2.0
# Errors after which the pool no longer holds the lease.
_LEASE_GONE = (LeaseExpired, SandboxCrashed, SandboxNotFound)


class SessionHooks(Protocol):
    """What ``SandboxOperations`` calls on the session it is mixed into: its write lock and
    its commit. A session that lacks one is abstract to mypy."""

    @property
    def busy(self) -> bool:
        """True while a change waits for or holds the write lock."""

    def _exclusive(self) -> AbstractAsyncContextManager[None]:
        """Hold the session's write lock."""

    async def _commit(
        self,
        changes: Mapping[str, Entry | None],
        contents: Mapping[str, bytes],
        *,
        author: Author,
        message: str,
        restored_from: int | None = None,
        update_tree: bool = True,
    ) -> VersionInfo:
        """Make ``changes`` one durable version (the lock is held)."""


class SandboxOperations(SessionHooks):
    """Mixin of ``WorkspaceSession``: the session's state it uses is declared here, the
    session's operations it calls in ``SessionHooks``."""

    workspace_id: str
    tree: WorkingTree
    sandboxes: SandboxLeaser
    sandbox_used_monotonic: float
    _lease: Lease | None
    _process_tokens: dict[str, str]
    _manifest: Manifest
    _settings: WorkspaceSettings

    @property
    def holds_sandbox(self) -> bool:
        return self._lease is not None

    async def exec(self, request: ExecRequest, *, author: Author) -> ExecOutcome:
        """Run ``request`` on the tree, then make what it changed one version."""
        async with self._exclusive():
            for attempt in range(2):
                lease = await self._sandbox()
                try:
                    result = await self.sandboxes.exec(lease, request)
                except LeaseExpired:
                    self._lost(lease)
                    if attempt == 0:
                        continue  # A held lease ended before the command ran: lease anew.
                    raise
                except BaseException as exc:
                    await self._end_transient(lease, exc)
                    raise
                break
            report = await self._sync(author, _message(request))
            await self._end_transient(lease, None)
            return ExecOutcome(result, report)

    async def exec_stream(
        self, request: ExecRequest, *, author: Author
    ) -> AsyncIterator[OutputChunk | ExecOutcome]:
        """Like ``exec``, yielding output as it comes, then one ``ExecOutcome``."""
        async with self._exclusive():
            lease = await self._sandbox()
            failure: BaseException | None = None
            try:
                async for event in self.sandboxes.exec_stream(lease, request):
                    if isinstance(event, OutputChunk):
                        yield event
                        continue
                    report = await self._sync(author, _message(request))
                    yield ExecOutcome(event, report)
                    return
                raise SandboxCrashed(lease.sandbox_id, "the command ended without a result")
            except BaseException as exc:
                failure = exc
                raise
            finally:
                await self._end_transient(lease, failure)

    async def start_process(
        self, request: StartRequest, *, author: Author, client_token: str | None = None
    ) -> ProcessInfo:
        """Start a long-running process. The workspace keeps its sandbox while any runs.

        A ``client_token`` seen before returns that process (while it is known) instead of
        starting another: a client that lost the answer can retry safely."""
        async with self._exclusive():
            if client_token is not None and client_token in self._process_tokens:
                known = self._process_tokens[client_token]
                for info in await self._held_processes():
                    if info.process_id == known:
                        return info
            lease = await self._sandbox()
            try:
                info = await self.sandboxes.start_process(lease, request)
            except BaseException as exc:
                await self._end_transient(lease, exc)
                raise
            self._lease = lease
            if client_token is not None:
                self._process_tokens[client_token] = info.process_id
            log.info(
                "workspace.process_started",
                workspace_id=self.workspace_id,
                process_id=info.process_id,
                request_id=author.request_id,
            )
            return info

    async def list_processes(self) -> list[ProcessInfo]:
        return await self._held_processes()

    async def read_logs(self, process_id: str, offset: int = 0) -> ProcessLogs:
        lease = self._held(process_id)
        return await self._held_call(lease, self.sandboxes.read_logs(lease, process_id, offset))

    async def follow_process(self, process_id: str, offset: int = 0) -> AsyncIterator[bytes]:
        lease = self._held(process_id)
        try:
            async for data in self.sandboxes.follow_process(lease, process_id, offset):
                self.sandbox_used_monotonic = time.monotonic()
                yield data
        except _LEASE_GONE:
            self._lost(lease)
            raise ProcessNotFound(lease.sandbox_id, process_id) from None

    async def write_stdin(self, process_id: str, data: bytes) -> None:
        lease = self._held(process_id)
        await self._held_call(lease, self.sandboxes.write_stdin(lease, process_id, data))

    async def resize_terminal(self, process_id: str, *, cols: int, rows: int) -> None:
        lease = self._held(process_id)
        call = self.sandboxes.resize_terminal(lease, process_id, cols=cols, rows=rows)
        await self._held_call(lease, call)

    async def kill_process(self, process_id: str, *, author: Author) -> SyncReport:
        """Kill the process and what it spawned, then version what it changed; the sandbox
        goes back to the pool when no process is left."""
        async with self._exclusive():
            lease = self._held(process_id)
            await self._held_call(lease, self.sandboxes.kill_process(lease, process_id))
            await self._await_exit(process_id)
            return await self._sync_and_maybe_release(author, f"sync: process {process_id} killed")

    async def sync(self, *, author: Author) -> SyncReport:
        """Version what processes changed so far (each exec and kill syncs by itself)."""
        async with self._exclusive():
            return await self._sync_and_maybe_release(author, "sync: process changes")

    async def reap_sandbox(self, idle_timeout_s: float) -> bool:
        """Sync and give the sandbox back when its processes ended or nobody used it for
        ``idle_timeout_s`` (then its processes are killed). True if it was given back."""
        if self._lease is None or self.busy:
            return False
        idle = time.monotonic() - self.sandbox_used_monotonic >= idle_timeout_s
        if not idle and any(p.running for p in await self._held_processes()):
            return False
        async with self._exclusive():
            await self._end_sandbox(Author(None, "system"), "sync: sandbox released")
        return True

    async def _sandbox(self) -> Lease:
        self.sandbox_used_monotonic = time.monotonic()
        if self._lease is not None:
            return self._lease
        return await self.sandboxes.lease(self.workspace_id, self.tree.root)

    def _held(self, process_id: str) -> Lease:
        self.sandbox_used_monotonic = time.monotonic()
        if self._lease is None:
            raise ProcessNotFound("-", process_id)
        return self._lease

    async def _held_call(self, lease: Lease, call: Awaitable[_T]) -> _T:
        try:
            return await call
        except _LEASE_GONE:
            self._lost(lease)
            raise

    async def _await_exit(self, process_id: str) -> None:
        """Wait (briefly) until a killed process is reaped, so its writes are in the tree."""
        deadline = time.monotonic() + _KILL_SETTLE_S
        while time.monotonic() < deadline:
            infos = await self._held_processes()
            if not any(p.process_id == process_id and p.running for p in infos):
                return
            await asyncio.sleep(0.02)

    async def _held_processes(self) -> list[ProcessInfo]:
        lease = self._lease
        if lease is None:
            return []
        try:
            return await self.sandboxes.list_processes(lease)
        except _LEASE_GONE:
            self._lost(lease)
            return []

    def _lost(self, lease: Lease) -> None:
        if self._lease == lease:
            self._lease = None
            self._process_tokens.clear()

    async def _end_transient(self, lease: Lease, failure: BaseException | None) -> None:
        """Release a lease taken for one call, unless processes hold it."""
        if isinstance(failure, _LEASE_GONE):
            self._lost(lease)
            return
        if self._lease != lease:
            await self._release(lease)

    async def _release(self, lease: Lease) -> None:
        self._lost(lease)
        try:
            await self.sandboxes.release(lease)
        except SandboxError as exc:
            log.warning("workspace.release_sandbox_failed", error=str(exc))

    async def _sync_and_maybe_release(self, author: Author, message: str) -> SyncReport:
        report = await self._sync(author, message)
        running = any(p.running for p in await self._held_processes())
        if self._lease is not None and not running:
            await self._release(self._lease)
        return report

    async def _end_sandbox(self, author: Author, message: str) -> None:
        """Best-effort final sync, then release (the lock is held)."""
        lease = self._lease
        if lease is None:
            return
        try:
            await self._sync(author, message)
        except (WorkspaceError, StateError, SQLAlchemyError, OSError) as exc:
            log.warning(
                "workspace.final_sync_failed", workspace_id=self.workspace_id, error=str(exc)
            )
        finally:
            await self._release(lease)

    async def _sync(self, author: Author, message: str) -> SyncReport:
        """Make the tree's changes one version (the lock is held)."""
        plan = await run_sync(plan_sync, self._manifest, self.tree)
        skipped = tuple(plan.skipped)
        if not plan.changes:
            return SyncReport(skipped=skipped)
        changed = tuple(sorted(plan.changes))
        try:
            for path, data in plan.contents.items():
                check_file_size(path, len(data), self._settings)
            info = await self._commit(
                plan.changes, plan.contents, author=author, message=message, update_tree=False
            )
        except (QuotaExceeded, InvalidPath) as exc:
            log.info("workspace.sync_refused", workspace_id=self.workspace_id, reason=exc.detail)
            return SyncReport(None, changed, skipped, exc.detail)
        return SyncReport(info.number, changed, skipped)


def _message(request: ExecRequest) -> str:
    command = request.shell if request.shell is not None else shlex.join(request.argv or ())
    if len(command) > _MESSAGE_COMMAND_CHARS:
        command = command[: _MESSAGE_COMMAND_CHARS - 1] + "…"
    return f"exec: {command}"
