"""The durable side of a workspace: leases, versions and the file index in the database.

Every change is committed in ONE transaction that starts with a conditional UPDATE of the
workspace row, guarded by the session's fencing token (``lease_epoch``) and the head version it
built on. Zero rows updated means another session took the workspace over (``LeaseLost``) or it
is gone (``WorkspaceNotFound``). Conditional UPDATEs rather than read-then-write because SQLite
through aiosqlite does not isolate a read from a later write in the same transaction; the UPDATE
also takes the write lock (SQLite) or row lock (PostgreSQL) first, so the rest of the
transaction runs alone. The content blobs are durable before this transaction commits; the
version's file set is the database's (the version row, its change rows and the file index, see
``history.py``), so a write costs one blob and one transaction.

SQLite allows one writer at a time and makes a blocked writer poll with growing sleeps (1, 2,
5, 10 ms ...), so the version transactions of one process take the database's write turn
(``Database.write_turn``), the same FIFO queue as its other write transactions, handed over as
soon as the previous commit returns. Other processes still meet SQLite's lock.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Insert,
    Table,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from actors.workspace.api import (
    Author,
    Change,
    LeaseLost,
    VersionInfo,
    WorkspaceNotFound,
)
from actors.workspace.bounded import map_bounded
from actors.workspace.history import EMPTY_MANIFEST, head_manifest
from actors.workspace.manifest import Manifest
from state.blobs import BlobStore
from state.db import Database
from state.models import FileEntry, Version, VersionFile, Workspace, new_id, utcnow
from state.threads import run_sync

__all__ = [
    "Committed",
    "Lease",
    "acquire_lease",
    "chunks",
    "commit_version",
    "put_blobs",
    "release_lease",
]

# Bound the number of bind parameters per statement (SQLite allows 32766, asyncpg 32767).
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Lease:
    """What a session learned when it took a workspace over: its token and the head."""

    epoch: int
    head_version: int
    head_version_id: str | None  # None while the workspace has no version yet.
    manifest: Manifest


@dataclass(frozen=True, slots=True)
class Committed:
    info: VersionInfo
    version_id: str


def chunks(items: Sequence[str], size: int = _CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def put_blobs(blobs: BlobStore, contents: Sequence[bytes]) -> None:
    """Store every content blob; returns once all are durable."""
    if contents:
        await map_bounded(blobs.put, contents)


async def acquire_lease(db: Database, workspace_id: str, owner: str) -> Lease:
    """Become the workspace's writer: bump its fencing token, fencing every older session out.

    The head's file set is read in the same transaction, after the bump: no older session can
    commit in between."""
    async with db.session() as session, session.begin():
        bumped = await _execute_update(
            session,
            update(Workspace)
            .where(Workspace.id == workspace_id, Workspace.deleted_at.is_(None))
            .values(lease_owner=owner, lease_epoch=Workspace.lease_epoch + 1),
        )
        if bumped == 0:
            raise WorkspaceNotFound(f"workspace {workspace_id} does not exist")
        row = (
            await session.execute(
                select(Workspace.lease_epoch, Workspace.head_version).where(
                    Workspace.id == workspace_id
                )
            )
        ).one()
        if row.head_version == 0:
            return Lease(row.lease_epoch, 0, None, EMPTY_MANIFEST)
        version_id = await session.scalar(
            select(Version.id).where(
                Version.workspace_id == workspace_id, Version.number == row.head_version
            )
        )
        manifest = await head_manifest(session, workspace_id)
    return Lease(row.lease_epoch, row.head_version, version_id, manifest)


async def release_lease(db: Database, workspace_id: str, epoch: int) -> None:
    """Clear the owner if this session still holds the lease (the epoch is never reused)."""
    async with db.session() as session, session.begin():
        await session.execute(
            update(Workspace)
            .where(Workspace.id == workspace_id, Workspace.lease_epoch == epoch)
            .values(lease_owner=None)
            .execution_options(synchronize_session=False)
        )


async def commit_version(
    db: Database,
    *,
    workspace_id: str,
    epoch: int,
    base_version: int,
    manifest: Manifest,
    changes: Sequence[Change],
    author: Author,
    message: str,
    restored_from: int | None = None,
    before_commit: Awaitable[None] | None = None,
) -> Committed:
    """Record version ``base_version + 1`` with ``changes`` (``manifest`` is the file set they
    lead to). The content blobs must be durable before the commit: stored already, or
    ``before_commit``, awaited before COMMIT (its error means nothing is committed).

    The statements are prebuilt Core statements: this runs for every write, and the ORM's
    per-statement work cost more CPU than the rest of the write path. On SQLite the whole
    transaction runs on one worker thread (aiosqlite would hop threads for every statement,
    and each hop waits for the GIL in a busy process); ``before_commit`` then completes first.
    On PostgreSQL the statements go out while ``before_commit`` is still running."""
    now = utcnow()
    version = _VersionRows.of(
        workspace_id=workspace_id,
        epoch=epoch,
        base_version=base_version,
        manifest=manifest,
        changes=changes,
        author=author,
        message=message,
        restored_from=restored_from,
        now=now,
        dialect=db.dialect,
    )
    thread_engine = db.thread_engine()
    if thread_engine is not None:
        if before_commit is not None:
            await before_commit
        async with db.write_turn():
            await run_sync(_commit_on_thread, thread_engine, version)
    else:
        async with db.engine.begin() as connection:
            await connection.run_sync(version.write)
            if before_commit is not None:
                await before_commit
    info = VersionInfo(
        workspace_id=workspace_id,
        number=base_version + 1,
        created_at=now,
        author_id=author.user_id,
        author_kind=author.kind,
        message=message,
        restored_from=restored_from,
        changes=tuple(changes),
    )
    return Committed(info, version.version_id)


def _commit_on_thread(engine: Engine, version: _VersionRows) -> None:
    with engine.begin() as connection:
        version.write(connection)


@dataclass(frozen=True, slots=True)
class _VersionRows:
    """Everything one version writes, ready for the prebuilt statements."""

    dialect: str
    workspace_id: str
    epoch: int
    version_id: str
    head: dict[str, Any]
    version: dict[str, Any]
    changes: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    deleted: list[str]

    @classmethod
    def of(
        cls,
        *,
        workspace_id: str,
        epoch: int,
        base_version: int,
        manifest: Manifest,
        changes: Sequence[Change],
        author: Author,
        message: str,
        restored_from: int | None,
        now: datetime,
        dialect: str,
    ) -> _VersionRows:
        version_id = new_id()
        rows: list[dict[str, Any]] = []
        entries: list[dict[str, Any]] = []
        deleted: list[str] = []
        for change in changes:
            entry = manifest.get(change.path)
            rows.append(
                {"id": new_id(), "version_id": version_id, "path": change.path,
                 "change": change.kind, "sha256": change.after_sha256,
                 "before_sha256": change.before_sha256, "size": entry.size if entry else None,
                 "mode": entry.mode if entry else None},
            )  # fmt: skip
            if entry is None:
                deleted.append(change.path)
                continue
            entries.append(
                {"id": new_id(), "workspace_id": workspace_id, "path": change.path,
                 "sha256": entry.sha256, "size": entry.size, "mode": entry.mode,
                 "modified_at": now},
            )  # fmt: skip
        return cls(
            dialect=dialect,
            workspace_id=workspace_id,
            epoch=epoch,
            version_id=version_id,
            head={"b_workspace": workspace_id, "b_epoch": epoch, "b_base": base_version,
                  "b_number": base_version + 1, "b_bytes": manifest.total_bytes, "b_now": now},
            version={"id": version_id, "workspace_id": workspace_id, "number": base_version + 1,
                     "author_id": author.user_id, "author_kind": author.kind,
                     "message": message, "created_at": now,
                     "parent_number": base_version or None, "restored_from": restored_from,
                     "manifest_sha256": None, "file_count": len(manifest),
                     "total_bytes": manifest.total_bytes},
            changes=rows,
            entries=entries,
            deleted=deleted,
        )  # fmt: skip

    def write(self, connection: Connection) -> None:
        """The fenced head bump, the version and its change rows, then the file index
        (deletions, then one upsert). Raises ``LeaseLost``/``WorkspaceNotFound`` when fenced."""
        if connection.execute(_BUMP_HEAD, self.head).rowcount == 0:
            _explain_fenced(connection, self.workspace_id, self.epoch)
        connection.execute(_INSERT_VERSION, self.version)
        if self.changes:
            connection.execute(_INSERT_CHANGE, self.changes)
        for paths in chunks(self.deleted):
            connection.execute(
                _DELETE_ENTRIES, {"b_workspace": self.workspace_id, "b_paths": list(paths)}
            )
        if self.entries:
            connection.execute(_upsert_entries(self.dialect), self.entries)


_WORKSPACES = cast(Table, Workspace.__table__)
_VERSIONS = cast(Table, Version.__table__)
_CHANGES = cast(Table, VersionFile.__table__)
_ENTRIES = cast(Table, FileEntry.__table__)

_BUMP_HEAD = (
    update(_WORKSPACES)
    .where(
        _WORKSPACES.c.id == bindparam("b_workspace"),
        _WORKSPACES.c.lease_epoch == bindparam("b_epoch"),
        _WORKSPACES.c.head_version == bindparam("b_base"),
        _WORKSPACES.c.deleted_at.is_(None),
    )
    .values(
        head_version=bindparam("b_number"),
        total_bytes=bindparam("b_bytes"),
        updated_at=bindparam("b_now"),
    )
)
_INSERT_VERSION = insert(_VERSIONS)
_INSERT_CHANGE = insert(_CHANGES)
_DELETE_ENTRIES = delete(_ENTRIES).where(
    _ENTRIES.c.workspace_id == bindparam("b_workspace"),
    _ENTRIES.c.path.in_(bindparam("b_paths", expanding=True)),
)


@functools.cache
def _upsert_entries(dialect: str) -> Insert:
    """``INSERT … ON CONFLICT (workspace_id, path) DO UPDATE``: one statement per version."""
    match dialect:
        case "sqlite":
            statement: sqlite.Insert | postgresql.Insert = sqlite.insert(_ENTRIES)
        case "postgresql":
            statement = postgresql.insert(_ENTRIES)
        case _:
            raise ValueError(f"unsupported database dialect {dialect!r}")
    return statement.on_conflict_do_update(
        index_elements=[_ENTRIES.c.workspace_id, _ENTRIES.c.path],
        set_={
            "sha256": statement.excluded.sha256,
            "size": statement.excluded.size,
            "mode": statement.excluded.mode,
            "modified_at": statement.excluded.modified_at,
        },
    )


async def _execute_update(session: AsyncSession, statement: Any) -> int:
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return cast(CursorResult[Any], result).rowcount


def _explain_fenced(connection: Connection, workspace_id: str, epoch: int) -> None:
    row = connection.execute(
        select(Workspace.lease_epoch, Workspace.deleted_at).where(Workspace.id == workspace_id)
    ).one_or_none()
    if row is None or row.deleted_at is not None:
        raise WorkspaceNotFound(f"workspace {workspace_id} does not exist")
    raise LeaseLost(
        f"workspace {workspace_id}: lease epoch {epoch} was superseded by {row.lease_epoch}"
        if row.lease_epoch != epoch
        else f"workspace {workspace_id}: head moved under this session"
    )
