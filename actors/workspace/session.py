"""WorkspaceSession: the single writer of one workspace.

Opening takes the workspace's lease (the newest opener wins and fences older sessions out) and
brings the working tree up to the head version (a no-op when the tree's sidecar already names
it). Every change runs under one FIFO lock: check → put blobs (contents, then the manifest) → one
fenced database transaction → update the working tree → return. A change is acknowledged only
once it is durable; the tree is a cache that is rebuilt from durable state when in doubt.

Commands in a sandbox are writes too: ``exec`` leases a sandbox bound to the tree under the same
lock, runs, and syncs what changed into one version (``sync.py`` decides what may be versioned).
This file is longer than the house limit because the lock, the commit and the lease are one
piece of state; the sandbox half is the section marked "sandboxes".
"""

from __future__ import annotations

import asyncio
import functools
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio.to_thread
import structlog
from sqlalchemy.exc import SQLAlchemyError

from actors.sandbox_pool.lease import Lease, LeaseExpired, SandboxLeaser, UnavailableLeaser
from actors.workspace.api import (
    Author,
    ExecOutcome,
    FileNotFoundInWorkspace,
    InvalidPath,
    PreconditionFailed,
    QuotaExceeded,
    SessionInfo,
    SyncReport,
    VersionInfo,
    VersionNotFound,
    WorkspaceError,
    WriteResult,
)
from actors.workspace.bounded import map_bounded
from actors.workspace.manifest import DEFAULT_MODE, Entry, Manifest, diff_manifests
from actors.workspace.paths import validate_path
from actors.workspace.preconditions import check_file_size, check_if_match, check_limits
from actors.workspace.settings import WorkspaceSettings
from actors.workspace.store import (
    EMPTY_MANIFEST,
    acquire_lease,
    commit_version,
    load_manifest,
    load_version_info,
    put_blobs,
    release_lease,
)
from actors.workspace.sync import plan_sync
from actors.workspace.tree import TreeHead, WorkingTree
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
from state.blobs import BlobStore
from state.blobs.protocol import digest_of
from state.db import Database
from state.errors import StateError
from state.models import utcnow

__all__ = ["SessionClosed", "WorkspaceSession"]

log = structlog.get_logger("actors.workspace")

# Hash and write on a worker thread past this many bytes; below, a thread hop costs more.
_THREAD_BYTES = 1 << 20
# Changes whose contents are not at hand are fetched one by one up to this count; past it the
# tree is re-materialized instead (it fetches in batches and skips files that already match).
_FETCH_LIMIT = 32
_EMPTY_SHA = digest_of(EMPTY_MANIFEST.encode())
_T = TypeVar("_T")
_NO_SANDBOXES = UnavailableLeaser("none", "no sandbox backend is configured for this host")
_MESSAGE_COMMAND_CHARS = 72
_KILL_SETTLE_S = 2.0
# Errors after which the pool no longer holds the lease.
_LEASE_GONE = (LeaseExpired, SandboxCrashed, SandboxNotFound)


class SessionClosed(WorkspaceError):
    """The session was unloaded while a call waited for it; the host reopens and retries."""


class WorkspaceSession:
    """Use ``await WorkspaceSession.open(...)``; the constructor does no I/O."""

    def __init__(
        self,
        workspace_id: str,
        *,
        db: Database,
        blobs: BlobStore,
        settings: WorkspaceSettings,
        tree: WorkingTree,
        epoch: int,
        head: TreeHead,
        manifest: Manifest,
    ) -> None:
        self.workspace_id = workspace_id
        self.lease_epoch = epoch
        self.opened_at = utcnow()
        self.opened_monotonic = self.last_used_monotonic = time.monotonic()
        self.last_used_at = self.opened_at
        self.writes = 0
        self.last_flush_s = 0.0
        self.tree = tree
        self._db = db
        self._blobs = blobs
        self._settings = settings
        self._head = head
        self._manifest = manifest
        self._lock = asyncio.Lock()
        self._pending = 0
        self._closed = False
        self._tree_stale = False
        # Called after every committed version, inside the write lock (live documents follow
        # their files this way); a listener must not raise.
        self.commit_listeners: list[
            Callable[[Mapping[str, Entry | None], Mapping[str, bytes], Author], Awaitable[None]]
        ] = []
        # Sandboxes: a lease is held between calls only while started processes may run.
        self.sandboxes: SandboxLeaser = _NO_SANDBOXES
        self._lease: Lease | None = None
        self._process_tokens: dict[str, str] = {}
        self.sandbox_used_monotonic = time.monotonic()

    @classmethod
    async def open(
        cls,
        workspace_id: str,
        *,
        db: Database,
        blobs: BlobStore,
        settings: WorkspaceSettings,
        tree: WorkingTree,
        owner: str,
    ) -> WorkspaceSession:
        """Take the lease of ``workspace_id`` and bring its working tree to the head version."""
        lease = await acquire_lease(db, workspace_id, owner)
        if lease.manifest_sha256 is None:
            manifest, head = EMPTY_MANIFEST, TreeHead(0, _EMPTY_SHA)
        else:
            manifest = Manifest.decode(await blobs.get(lease.manifest_sha256))
            head = TreeHead(lease.head_version, lease.manifest_sha256)
        session = cls(
            workspace_id,
            db=db,
            blobs=blobs,
            settings=settings,
            tree=tree,
            epoch=lease.epoch,
            head=head,
            manifest=manifest,
        )
        if tree.read_head() != head:
            await session._materialize()
        return session

    # --- state ----------------------------------------------------------------------------------

    @property
    def head_version(self) -> int:
        return self._head.version

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def busy(self) -> bool:
        return self._pending > 0

    @property
    def closed(self) -> bool:
        return self._closed

    def info(self, *, host: str, node_id: str | None) -> SessionInfo:
        return SessionInfo(
            workspace_id=self.workspace_id,
            host=host,
            node_id=node_id,
            opened_at=self.opened_at,
            last_used_at=self.last_used_at,
            writes=self.writes,
            lease_epoch=self.lease_epoch,
            head_version=self._head.version,
            pending_writes=self._pending,
            extra={"files": str(len(self._manifest)), "bytes": str(self._manifest.total_bytes)},
        )

    async def close(self) -> None:
        """Let queued calls finish, then release the lease. Later calls raise SessionClosed."""
        async with self._lock:
            if self._closed:
                return
            await self._end_sandbox(Author(None, "system"), "sync: session closed")
            self._closed = True
        try:
            await release_lease(self._db, self.workspace_id, self.lease_epoch)
        except (StateError, SQLAlchemyError, OSError) as exc:
            # Releasing is a courtesy (the next opener bumps the epoch anyway): log, move on.
            log.warning("workspace.release_failed", workspace_id=self.workspace_id, error=str(exc))

    def abandon(self) -> None:
        """Stop using this session at once (it lost its lease): no I/O, later calls fail."""
        self._closed = True

    # --- the WorkspaceWriter operations -----------------------------------------------------------

    async def write_file(
        self, path: str, data: bytes, *, if_match: str | None, author: Author
    ) -> WriteResult:
        path = validate_path(path)
        check_file_size(path, len(data), self._settings)
        sha = await _hash(data)
        async with self._exclusive():
            current = self._manifest.get(path)
            check_if_match(path, current, if_match)
            if current is not None and current.sha256 == sha:
                return WriteResult(path, len(data), sha, self._head.version, changed=False)
            entry = Entry(sha, len(data), current.mode if current else DEFAULT_MODE)
            info = await self._commit({path: entry}, {path: data}, author=author, message="")
            return WriteResult(path, len(data), sha, info.number)

    async def delete_file(self, path: str, *, if_match: str | None, author: Author) -> VersionInfo:
        path = validate_path(path)
        async with self._exclusive():
            current = self._manifest.get(path)
            if current is None and self._manifest.is_dir(path):
                if if_match not in (None, "*"):
                    raise PreconditionFailed(f"{path!r} is a directory", None)
                doomed = self._manifest.files_under(path)
            else:
                if current is None:
                    raise FileNotFoundInWorkspace(f"no such file: {path!r}")
                check_if_match(path, current, if_match)
                doomed = [path]
            changes: dict[str, Entry | None] = dict.fromkeys(doomed)
            return await self._commit(changes, {}, author=author, message=f"Delete {path}")

    async def move_file(self, source: str, destination: str, *, author: Author) -> VersionInfo:
        source, destination = validate_path(source), validate_path(destination)
        async with self._exclusive():
            if source == destination:
                return await self._head_info()
            if destination.startswith(source + "/"):
                raise InvalidPath(f"cannot move {source!r} into itself")
            entry = self._manifest.get(source)
            if entry is not None:
                moves = {source: destination}
            elif self._manifest.is_dir(source):
                moves = {
                    p: destination + p[len(source) :] for p in self._manifest.files_under(source)
                }
            else:
                raise FileNotFoundInWorkspace(f"no such file: {source!r}")
            existing = self._manifest.get(destination)
            if existing is not None or self._manifest.is_dir(destination):
                raise PreconditionFailed(
                    f"destination {destination!r} exists", existing.sha256 if existing else None
                )
            changes: dict[str, Entry | None] = dict.fromkeys(moves)
            changes.update({new: self._manifest[old] for old, new in moves.items()})
            message = f"Move {source} to {destination}"
            return await self._commit(changes, {}, author=author, message=message)

    async def apply_batch(
        self,
        files: Mapping[str, bytes | None],
        *,
        author: Author,
        message: str,
        replace_all: bool = False,
    ) -> VersionInfo:
        contents: dict[str, bytes] = {}
        deletions: list[str] = []
        for raw, data in files.items():
            path = validate_path(raw)
            if data is None:
                deletions.append(path)
            else:
                check_file_size(path, len(data), self._settings)
                contents[path] = data
        hashes = await _hash_many(contents)
        async with self._exclusive():
            changes: dict[str, Entry | None] = {}
            for path in deletions:
                if path in self._manifest:
                    changes[path] = None
            if replace_all:
                changes.update(dict.fromkeys(p for p in self._manifest if p not in contents))
            for path, data in contents.items():
                current = self._manifest.get(path)
                if current is None or current.sha256 != hashes[path]:
                    mode = current.mode if current else DEFAULT_MODE
                    changes[path] = Entry(hashes[path], len(data), mode)
            return await self._commit(changes, contents, author=author, message=message)

    async def restore(self, version: int, *, author: Author) -> VersionInfo:
        async with self._exclusive():
            if not 1 <= version <= self._head.version:
                raise VersionNotFound(f"workspace {self.workspace_id} has no version {version}")
            target = await load_manifest(self._db, self._blobs, self.workspace_id, version)
            changes: dict[str, Entry | None] = {
                change.path: target.get(change.path)
                for change in diff_manifests(self._manifest, target)
            }
            return await self._commit(
                changes,
                {},
                author=author,
                message=f"Restore version {version}",
                restored_from=version,
            )

    # --- sandboxes ------------------------------------------------------------------------------

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
        plan = await anyio.to_thread.run_sync(plan_sync, self._manifest, self.tree)
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

    # --- internals ------------------------------------------------------------------------------

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        self._pending += 1
        try:
            async with self._lock:
                if self._closed:
                    raise SessionClosed(f"session of {self.workspace_id} is closed")
                yield
        finally:
            self._pending -= 1
            self.last_used_monotonic = time.monotonic()
            self.last_used_at = utcnow()

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
        """Make ``changes`` one durable version, then update the tree; no-op if nothing changes.

        ``update_tree=False`` when the tree already holds the changes (a sync after a command):
        only the sidecar moves, and the files keep the sandbox user as their owner."""
        old = self._manifest
        new = old.apply(changes)
        effective = diff_manifests(
            {p: old[p] for p in changes if p in old}, {p: new[p] for p in changes if p in new}
        )
        if not effective:
            return await self._head_info()
        check_limits(old, new, changes, self._settings)
        started = time.perf_counter()
        # Content and manifest blobs are independent; nothing refers to either until the commit.
        _, manifest_ref = await asyncio.gather(
            put_blobs(
                self._blobs,
                [contents[c.path] for c in effective if c.after_sha256 and c.path in contents],
            ),
            self._blobs.put(new.encode()),
        )
        info = await commit_version(
            self._db,
            workspace_id=self.workspace_id,
            epoch=self.lease_epoch,
            base_version=self._head.version,
            manifest=new,
            manifest_sha256=manifest_ref.sha256,
            changes=effective,
            author=author,
            message=message,
            restored_from=restored_from,
        )
        self.last_flush_s = time.perf_counter() - started
        self._manifest = new
        self._head = TreeHead(info.number, manifest_ref.sha256)
        self.writes += 1
        log.info(
            "workspace.version",
            workspace_id=self.workspace_id,
            version=info.number,
            changes=len(effective),
            bytes=new.total_bytes,
            request_id=author.request_id,
        )
        if update_tree:
            await self._update_tree(changes, contents)
        else:
            self.tree.write_head(self._head)
        for listener in self.commit_listeners:
            await listener(changes, contents, author)
        return info

    async def _update_tree(
        self, changes: Mapping[str, Entry | None], contents: Mapping[str, bytes]
    ) -> None:
        """Bring the tree to the new head; a failure only marks it stale (durable state is fine)."""
        try:
            lacking = [p for p, e in changes.items() if e is not None and p not in contents]
            if self._tree_stale or len(lacking) > _FETCH_LIMIT:
                await self._materialize()
                return
            digests = [self._manifest[path].sha256 for path in lacking]
            fetched = dict(zip(lacking, await map_bounded(self._blobs.get, digests), strict=True))
            apply = functools.partial(self._apply_to_tree, changes, {**contents, **fetched})
            if sum(map(len, contents.values())) + sum(map(len, fetched.values())) > _THREAD_BYTES:
                await anyio.to_thread.run_sync(apply)
            else:
                apply()
        except (OSError, WorkspaceError, StateError) as exc:
            self._tree_stale = True
            log.warning("workspace.tree_stale", workspace_id=self.workspace_id, error=str(exc))

    def _apply_to_tree(
        self, changes: Mapping[str, Entry | None], contents: Mapping[str, bytes]
    ) -> None:
        # The sidecar still names the previous head, which no longer matches the database, so
        # a crash half-way through makes the next open re-materialize.
        for path, entry in changes.items():
            if entry is None:
                self.tree.delete(path)
            else:
                self.tree.write(path, contents[path], entry.mode)
        self.tree.write_head(self._head)

    async def _materialize(self) -> None:
        manifest = {path: entry.sha256 for path, entry in self._manifest.items()}
        await self.tree.materialize(manifest, self._blobs.get)
        self.tree.write_head(self._head)
        self._tree_stale = False

    async def _head_info(self) -> VersionInfo:
        return await load_version_info(
            self._db, self.workspace_id, self._head.version, with_changes=False
        )


def _message(request: ExecRequest) -> str:
    command = request.shell if request.shell is not None else shlex.join(request.argv or ())
    if len(command) > _MESSAGE_COMMAND_CHARS:
        command = command[: _MESSAGE_COMMAND_CHARS - 1] + "…"
    return f"exec: {command}"


async def _hash(data: bytes) -> str:
    if len(data) > _THREAD_BYTES:
        return await anyio.to_thread.run_sync(digest_of, data)
    return digest_of(data)


async def _hash_many(contents: Mapping[str, bytes]) -> dict[str, str]:
    def run() -> dict[str, str]:
        return {path: digest_of(data) for path, data in contents.items()}

    if sum(map(len, contents.values())) > _THREAD_BYTES:
        return await anyio.to_thread.run_sync(run)
    return run()
