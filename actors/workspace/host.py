"""WorkspaceHostCore: many workspace sessions in one process (the logic of a WorkspaceHost actor).

Sessions open lazily on the first call for a workspace (concurrent first calls share one open),
and unload when idle (``idle_timeout_s``) or old (``max_lifetime_s``) from a reaper task the host
owns. A session that lost its lease, or whose durable write failed in an unknown way, is dropped
at once; the next call reopens from durable state. The host is an async context manager:
``async with WorkspaceHostCore(...) as host:``, or ``await host.start()`` / ``await host.aclose()``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import structlog

from actors.sandbox_pool.lease import SandboxLeaser
from actors.workspace.api import (
    Author,
    ExecOutcome,
    LeaseLost,
    SessionInfo,
    SyncReport,
    VersionInfo,
    WorkspaceError,
    WorkspaceNotFound,
    WriteResult,
)
from actors.workspace.live import CollabReply
from actors.workspace.live_host import LiveHost
from actors.workspace.purge import purge_deleted_workspaces
from actors.workspace.realtime import Realtime
from actors.workspace.session import SessionClosed, WorkspaceSession
from actors.workspace.settings import WorkspaceSettings
from actors.workspace.tree import WorkingTree
from sandbox import (
    ExecRequest,
    OutputChunk,
    ProcessInfo,
    ProcessLogs,
    SandboxError,
    StartRequest,
)
from state.blobs import BlobStore
from state.db import Database
from state.errors import StateError

__all__ = ["HostStats", "WorkspaceHostCore"]

log = structlog.get_logger("actors.workspace")

_T = TypeVar("_T")
# A call that finds its session closing reopens it; this bounds the retries.
_REOPEN_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class HostStats:
    """Counters an actor shell exports as metrics."""

    open_sessions: int
    sessions_opened: int
    sessions_unloaded: int
    writes: int
    lease_lost: int
    last_flush_s: float


class WorkspaceHostCore:
    def __init__(
        self,
        name: str,
        *,
        db: Database,
        blobs: BlobStore,
        settings: WorkspaceSettings,
        node_id: str | None = None,
        purger: bool = False,
        sandboxes: SandboxLeaser | None = None,
        realtime: Realtime | None = None,
    ) -> None:
        """``sandboxes``: where sessions lease sandboxes for exec (None: exec is refused).
        ``realtime``: where live-document edits made by file writes and file-tree events go."""
        if settings.trees_dir is None:
            raise ValueError("WorkspaceSettings.trees_dir is None: resolve it before hosting")
        self.name = name
        self.node_id = node_id
        self.settings = settings
        self._trees_dir = Path(settings.trees_dir)
        self._db = db
        self._blobs = blobs
        self._sessions: dict[str, WorkspaceSession] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._reaper: asyncio.Task[None] | None = None
        # Exactly one host per deployment purges deleted workspaces (purging is idempotent, but
        # one purger keeps blob deletions from racing each other).
        self._purger = purger
        self.sandboxes = sandboxes
        self._purge_task: asyncio.Task[None] | None = None
        self.purged = 0
        self._opened = self._unloaded = self._writes = self._lease_lost = 0
        self._last_flush_s = 0.0
        self.live = LiveHost(db=db, blobs=blobs, settings=settings, realtime=realtime)

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the reaper that unloads idle and over-age sessions (idempotent)."""
        if self._reaper is None:
            self._trees_dir.mkdir(parents=True, exist_ok=True)
            self._reaper = asyncio.create_task(self._reap_forever(), name=f"{self.name}-reaper")
        if self._purger and self._purge_task is None:
            self._purge_task = asyncio.create_task(
                self._purge_forever(), name=f"{self.name}-purger"
            )

    async def aclose(self) -> None:
        """Stop the reaper and close every session (queued writes finish first)."""
        for task in (self._reaper, self._purge_task):
            if task is not None:
                task.cancel()
                # wait() does not re-raise the task's CancelledError, but propagates our own.
                await asyncio.wait([task])
        self._reaper = self._purge_task = None
        for workspace_id in list(self._sessions):
            await self.close(workspace_id)

    async def __aenter__(self) -> WorkspaceHostCore:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- the WorkspaceWriter operations -----------------------------------------------------------

    async def write_file(
        self, workspace_id: str, path: str, data: bytes, *, if_match: str | None, author: Author
    ) -> WriteResult:
        return await self._call(
            workspace_id, lambda s: s.write_file(path, data, if_match=if_match, author=author)
        )

    async def delete_file(
        self, workspace_id: str, path: str, *, if_match: str | None, author: Author
    ) -> VersionInfo:
        return await self._call(
            workspace_id, lambda s: s.delete_file(path, if_match=if_match, author=author)
        )

    async def move_file(
        self, workspace_id: str, source: str, destination: str, *, author: Author
    ) -> VersionInfo:
        return await self._call(
            workspace_id, lambda s: s.move_file(source, destination, author=author)
        )

    async def apply_batch(
        self,
        workspace_id: str,
        files: Mapping[str, bytes | None],
        *,
        author: Author,
        message: str,
        replace_all: bool = False,
        modes: Mapping[str, int] | None = None,
    ) -> VersionInfo:
        return await self._call(
            workspace_id,
            lambda s: s.apply_batch(
                files, author=author, message=message, replace_all=replace_all, modes=modes
            ),
        )

    async def restore(self, workspace_id: str, version: int, *, author: Author) -> VersionInfo:
        return await self._call(workspace_id, lambda s: s.restore(version, author=author))

    # --- sandbox execution ----------------------------------------------------------------------

    async def exec(self, workspace_id: str, request: ExecRequest, *, author: Author) -> ExecOutcome:
        return await self._call(workspace_id, lambda s: s.exec(request, author=author))

    async def exec_stream(
        self, workspace_id: str, request: ExecRequest, *, author: Author
    ) -> AsyncIterator[OutputChunk | ExecOutcome]:
        session = await self.session(workspace_id)
        async for event in session.exec_stream(request, author=author):
            yield event

    async def start_process(
        self,
        workspace_id: str,
        request: StartRequest,
        *,
        author: Author,
        client_token: str | None = None,
    ) -> ProcessInfo:
        return await self._call(
            workspace_id,
            lambda s: s.start_process(request, author=author, client_token=client_token),
        )

    async def list_processes(self, workspace_id: str) -> list[ProcessInfo]:
        return await self._call(workspace_id, lambda s: s.list_processes())

    async def read_logs(self, workspace_id: str, process_id: str, offset: int = 0) -> ProcessLogs:
        return await self._call(workspace_id, lambda s: s.read_logs(process_id, offset))

    async def follow_process(
        self, workspace_id: str, process_id: str, offset: int = 0
    ) -> AsyncIterator[bytes]:
        session = await self.session(workspace_id)
        async for data in session.follow_process(process_id, offset):
            yield data

    async def write_stdin(self, workspace_id: str, process_id: str, data: bytes) -> None:
        await self._call(workspace_id, lambda s: s.write_stdin(process_id, data))

    async def resize_terminal(
        self, workspace_id: str, process_id: str, *, cols: int, rows: int
    ) -> None:
        await self._call(
            workspace_id, lambda s: s.resize_terminal(process_id, cols=cols, rows=rows)
        )

    async def kill_process(
        self, workspace_id: str, process_id: str, *, author: Author
    ) -> SyncReport:
        return await self._call(workspace_id, lambda s: s.kill_process(process_id, author=author))

    async def sync(self, workspace_id: str, *, author: Author) -> SyncReport:
        return await self._call(workspace_id, lambda s: s.sync(author=author))

    async def close(self, workspace_id: str) -> None:
        """Unload the workspace's session if it is open here; queued calls finish first."""
        session = self._sessions.pop(workspace_id, None)
        self._opening.pop(workspace_id, None)
        if session is not None:
            await self.live.close(workspace_id)
            await session.close()
            self._unloaded += 1
            log.info("workspace.session_unloaded", workspace_id=workspace_id, host=self.name)

    async def sessions(self) -> list[SessionInfo]:
        return [s.info(host=self.name, node_id=self.node_id) for s in self._sessions.values()]

    # --- live collaboration (see live.py) -------------------------------------------------------

    async def collab_open(self, workspace_id: str, path: str) -> bytes:
        """The session's sync step 1 for a client opening ``path``."""
        return await self._call(workspace_id, lambda s: self.live.of(s).open(path))

    async def collab_receive(
        self, workspace_id: str, path: str, message: bytes, *, user_id: str, can_write: bool
    ) -> CollabReply:
        """Apply one client message; updates are durable when this returns."""
        return await self._call(
            workspace_id,
            lambda s: self.live.of(s).receive(path, message, user_id=user_id, can_write=can_write),
        )

    async def session(self, workspace_id: str) -> WorkspaceSession:
        """The open session of ``workspace_id``, opening it here if needed."""
        session = self._sessions.get(workspace_id)
        if session is not None and not session.closed:
            return session
        lock = self._opening.setdefault(workspace_id, asyncio.Lock())
        try:
            async with lock:
                return await self._open(workspace_id)
        finally:
            # Waiters keep their reference; once the session is registered they take it from
            # the dict, so the lock need not outlive this open.
            if self._opening.get(workspace_id) is lock and not lock.locked():
                del self._opening[workspace_id]

    async def _open(self, workspace_id: str) -> WorkspaceSession:
        session = self._sessions.get(workspace_id)
        if session is not None and not session.closed:
            return session
        session = await WorkspaceSession.open(
            workspace_id,
            db=self._db,
            blobs=self._blobs,
            settings=self.settings,
            tree=WorkingTree(self._trees_dir / workspace_id),
            owner=f"{self.name}/{uuid.uuid4().hex[:12]}",
        )
        if self.sandboxes is not None:
            session.sandboxes = self.sandboxes
        self._sessions[workspace_id] = session
        self.live.watch(session)
        self._opened += 1
        log.info(
            "workspace.session_opened",
            workspace_id=workspace_id,
            host=self.name,
            epoch=session.lease_epoch,
            head_version=session.head_version,
        )
        return session

    def stats(self) -> HostStats:
        return HostStats(
            open_sessions=len(self._sessions),
            sessions_opened=self._opened,
            sessions_unloaded=self._unloaded,
            writes=self._writes,
            lease_lost=self._lease_lost,
            last_flush_s=self._last_flush_s,
        )

    # --- internals ------------------------------------------------------------------------------

    async def _call(
        self, workspace_id: str, operation: Callable[[WorkspaceSession], Awaitable[_T]]
    ) -> _T:
        for attempt in range(_REOPEN_ATTEMPTS):
            session = await self.session(workspace_id)
            writes_before = session.writes
            try:
                result = await operation(session)
            except SessionClosed:
                if attempt == _REOPEN_ATTEMPTS - 1:
                    raise
                continue
            except LeaseLost:
                self._lease_lost += 1
                self._drop(session, reason="lease_lost")
                raise
            except WorkspaceNotFound:
                self._drop(session, reason="workspace_gone")
                raise
            except (WorkspaceError, SandboxError):
                raise  # A refused request: the session's state is unchanged.
            except BaseException:
                # Unknown outcome (e.g. the connection broke during COMMIT): the session's view of
                # the head may be wrong, so reopen from durable state on the next call.
                self._drop(session, reason="write_failed")
                raise
            if session.writes != writes_before:
                self._writes += session.writes - writes_before
                self._last_flush_s = session.last_flush_s
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop(self, session: WorkspaceSession, *, reason: str) -> None:
        session.abandon()
        self.live.abandon(session.workspace_id)
        if self._sessions.get(session.workspace_id) is session:
            del self._sessions[session.workspace_id]
            self._unloaded += 1
        log.warning(
            "workspace.session_dropped",
            workspace_id=session.workspace_id,
            host=self.name,
            reason=reason,
        )

    async def _reap_forever(self) -> None:
        interval = min(self.settings.idle_timeout_s, self.settings.max_lifetime_s) / 4
        interval = max(0.05, min(interval, 30.0))
        while True:
            await asyncio.sleep(interval)
            await self.reap()

    async def _purge_forever(self) -> None:
        while True:
            try:
                await self.purge()
            except StateError as exc:
                # Storage hiccups must not end the loop; the next round retries.
                log.warning("workspace.purge_failed", host=self.name, error=str(exc))
            await asyncio.sleep(self.settings.purge_interval_s)

    async def purge(self) -> int:
        """Purge workspaces deleted longer than the grace period ago; return how many."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self.settings.delete_grace_s)
        purged = await purge_deleted_workspaces(self._db, self._blobs, older_than=cutoff)
        if purged:
            self.purged += purged
            log.info("workspace.purged", host=self.name, workspaces=purged)
        return purged

    async def reap(self) -> int:
        """Unload idle and over-age sessions now; return how many were unloaded."""
        now = time.monotonic()
        doomed = [
            workspace_id
            for workspace_id, s in self._sessions.items()
            if (
                not s.busy
                and now - max(s.last_used_monotonic, s.sandbox_used_monotonic)
                >= self.settings.idle_timeout_s
            )
            or now - s.opened_monotonic >= self.settings.max_lifetime_s
        ]
        for workspace_id in doomed:
            await self.close(workspace_id)
        if self.sandboxes is not None:
            for session in list(self._sessions.values()):
                if session.holds_sandbox:
                    try:
                        await session.reap_sandbox(self.sandboxes.idle_timeout_s)
                    except (WorkspaceError, SandboxError, StateError) as exc:
                        log.warning(
                            "workspace.sandbox_reap_failed",
                            workspace_id=session.workspace_id,
                            error=str(exc),
                        )
        return len(doomed)
