"""WorkspaceSession: the single writer of one workspace.

Opening takes the workspace's lease (the newest opener wins and fences older sessions out) and
brings the working tree up to the head version (a no-op when the tree's sidecar already names
it). Every change runs under one FIFO lock: check → put the content blobs → one fenced database
transaction (version row, change rows, file index) → update the working tree → return. A
change is acknowledged only once it is durable: the transaction commits only after the blobs
are (``store.commit_version``).

The tree is a cache that is rebuilt from durable state when in doubt. Its sidecar names the
version the tree reflects; it is written when the tree is materialized and when the session
closes, not per version: after a crash it names an older version than the database's head, so
the next open re-materializes the tree (hashing what is there, fetching what differs).

The sandbox operations (exec, processes, sync) are in ``session_sandbox.py``.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import structlog
from sqlalchemy.exc import SQLAlchemyError

from actors.sandbox_pool.lease import Lease, SandboxLeaser
from actors.workspace.api import (
    Author,
    Change,
    FileNotFoundInWorkspace,
    InvalidPath,
    PreconditionFailed,
    SessionInfo,
    VersionInfo,
    VersionNotFound,
    WorkspaceError,
    WriteResult,
)
from actors.workspace.bounded import map_bounded
from actors.workspace.history import load_manifest, load_version_info
from actors.workspace.manifest import DEFAULT_MODE, Entry, Manifest, diff_manifests, file_mode
from actors.workspace.paths import validate_path
from actors.workspace.preconditions import check_file_size, check_if_match, check_limits
from actors.workspace.session_sandbox import NO_SANDBOXES, SandboxOperations
from actors.workspace.settings import WorkspaceSettings
from actors.workspace.store import (
    Committed,
    acquire_lease,
    commit_version,
    put_blobs,
    release_lease,
)
from actors.workspace.tree import TreeHead, WorkingTree
from state.blobs import BlobStore
from state.blobs.protocol import digest_of
from state.db import Database
from state.errors import StateError
from state.models import utcnow
from state.threads import run_sync

__all__ = ["SessionClosed", "WorkspaceSession"]

log = structlog.get_logger("actors.workspace")

# Hash and write on a worker thread past this many bytes; below, a thread hop costs more.
_THREAD_BYTES = 1 << 20
# Changes whose contents are not at hand are fetched one by one up to this count; past it the
# tree is re-materialized instead (it fetches in batches and skips files that already match).
_FETCH_LIMIT = 32
# Up to this many content bytes, the blob puts overlap the version transaction (which waits
# for them before it commits). Larger puts (or slow S3 ones) go first, so that a transaction
# never holds its locks and its pooled connection for the duration of a big upload.
_OVERLAP_BYTES = 1 << 20

Listener = Callable[[Mapping[str, Entry | None], Mapping[str, bytes], Author], Awaitable[None]]


class SessionClosed(WorkspaceError):
    """The session was unloaded while a call waited for it; the host reopens and retries."""


class WorkspaceSession(SandboxOperations):
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
        self.commit_listeners: list[Listener] = []
        # Sandboxes: a lease is held between calls only while started processes may run.
        self.sandboxes: SandboxLeaser = NO_SANDBOXES
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
        session = cls(
            workspace_id,
            db=db,
            blobs=blobs,
            settings=settings,
            tree=tree,
            epoch=lease.epoch,
            head=TreeHead(lease.head_version, lease.head_version_id or ""),
            manifest=lease.manifest,
        )
        if tree.read_head() != session._head:
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
            self._record_tree_head()
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
        modes: Mapping[str, int] | None = None,
    ) -> VersionInfo:
        modes = modes or {}
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
                if path in modes:
                    mode = file_mode(modes[path])
                else:
                    mode = current.mode if current else DEFAULT_MODE
                entry = Entry(hashes[path], len(data), mode)
                if entry != current:
                    changes[path] = entry
            return await self._commit(changes, contents, author=author, message=message)

    async def restore(self, version: int, *, author: Author) -> VersionInfo:
        async with self._exclusive():
            if not 1 <= version <= self._head.version:
                raise VersionNotFound(f"workspace {self.workspace_id} has no version {version}")
            target = await load_manifest(self._db, self.workspace_id, version)
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
        the files keep the sandbox user as their owner."""
        old = self._manifest
        new = old.apply(changes)
        effective = diff_manifests(
            {p: old[p] for p in changes if p in old}, {p: new[p] for p in changes if p in new}
        )
        if not effective:
            return await self._head_info()
        check_limits(old, new, changes, self._settings)
        started = time.perf_counter()
        stored = [contents[c.path] for c in effective if c.after_sha256 and c.path in contents]
        committed = await self._durably(
            stored, new, effective, author=author, message=message, restored_from=restored_from
        )
        info = committed.info
        self.last_flush_s = time.perf_counter() - started
        self._manifest = new
        self._head = TreeHead(info.number, committed.version_id)
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
        for listener in self.commit_listeners:
            await listener(changes, contents, author)
        return info

    async def _durably(
        self,
        stored: list[bytes],
        new: Manifest,
        effective: list[Change],
        *,
        author: Author,
        message: str,
        restored_from: int | None,
    ) -> Committed:
        """Put the content blobs and commit the version; return once both are durable.

        The version's file set is the transaction's (no manifest blob). Small puts are handed
        to ``commit_version`` still running: it commits only after they are done (on PostgreSQL
        its statements go out meanwhile; see ``store.py``)."""
        version = functools.partial(
            commit_version,
            self._db,
            workspace_id=self.workspace_id,
            epoch=self.lease_epoch,
            base_version=self._head.version,
            manifest=new,
            changes=effective,
            author=author,
            message=message,
            restored_from=restored_from,
        )
        if not stored or sum(map(len, stored)) > _OVERLAP_BYTES:
            await put_blobs(self._blobs, stored)
            return await version()
        puts = asyncio.ensure_future(put_blobs(self._blobs, stored))
        try:
            return await version(before_commit=puts)
        finally:
            if not puts.done():
                await asyncio.wait([puts])  # The commit failed first: its error is the one raised.
            if not puts.cancelled():
                puts.exception()  # (Retrieved, so a failed put is not reported twice.)

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
                await run_sync(apply)
            else:
                apply()
        except (OSError, WorkspaceError, StateError) as exc:
            self._tree_stale = True
            log.warning("workspace.tree_stale", workspace_id=self.workspace_id, error=str(exc))

    def _apply_to_tree(
        self, changes: Mapping[str, Entry | None], contents: Mapping[str, bytes]
    ) -> None:
        # The sidecar names an older version, which no longer matches the database, so a crash
        # half-way through (or any time before the session closes) makes the next open
        # re-materialize.
        for path, entry in changes.items():
            if entry is None:
                self.tree.delete(path)
            else:
                self.tree.write(path, contents[path], entry.mode)

    def _record_tree_head(self) -> None:
        """Name the head in the sidecar, so the next open can trust the tree (at close)."""
        if self._tree_stale:
            return
        try:
            self.tree.write_head(self._head)
        except OSError as exc:  # The next open re-materializes instead: slower, still right.
            log.warning(
                "workspace.tree_head_failed", workspace_id=self.workspace_id, error=str(exc)
            )

    async def _materialize(self) -> None:
        manifest = {path: entry.sha256 for path, entry in self._manifest.items()}
        modes = {path: entry.mode for path, entry in self._manifest.items()}
        await self.tree.materialize(manifest, self._blobs.get, modes)
        self.tree.write_head(self._head)
        self._tree_stale = False

    async def _head_info(self) -> VersionInfo:
        return await load_version_info(
            self._db, self.workspace_id, self._head.version, with_changes=False
        )


async def _hash(data: bytes) -> str:
    if len(data) > _THREAD_BYTES:
        return await run_sync(digest_of, data)
    return digest_of(data)


async def _hash_many(contents: Mapping[str, bytes]) -> dict[str, str]:
    def run() -> dict[str, str]:
        return {path: digest_of(data) for path, data in contents.items()}

    if sum(map(len, contents.values())) > _THREAD_BYTES:
        return await run_sync(run)
    return run()
