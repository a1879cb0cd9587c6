"""The durable side of a workspace: leases, versions and the file index in the database.

Every change is committed in ONE transaction that starts with a conditional UPDATE of the
workspace row, guarded by the session's fencing token (``lease_epoch``) and the head version it
built on. Zero rows updated means another session took the workspace over (``LeaseLost``) or it
is gone (``WorkspaceNotFound``). Conditional UPDATEs rather than read-then-write because SQLite
through aiosqlite does not isolate a read from a later write in the same transaction; the UPDATE
also takes the write lock (SQLite) or row lock (PostgreSQL) first, so the rest of the
transaction runs alone. Blobs (contents, then the manifest) are put before this transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from actors.workspace.api import (
    Author,
    Change,
    ChangeKind,
    LeaseLost,
    VersionInfo,
    VersionNotFound,
    WorkspaceNotFound,
)
from actors.workspace.bounded import map_bounded
from actors.workspace.manifest import Entry, Manifest
from state.blobs import BlobStore
from state.db import Database
from state.models import FileEntry, Version, VersionFile, Workspace, utcnow

__all__ = [
    "Lease",
    "acquire_lease",
    "chunks",
    "commit_version",
    "load_changes",
    "load_manifest",
    "load_version_info",
    "put_blobs",
    "release_lease",
    "version_info",
]

# Bound the number of bind parameters per statement (SQLite allows 32766, asyncpg 32767).
_CHUNK = 500
EMPTY_MANIFEST = Manifest()


@dataclass(frozen=True, slots=True)
class Lease:
    """What a session learned when it took a workspace over."""

    epoch: int
    head_version: int
    manifest_sha256: str | None  # None while the workspace has no version yet.


def chunks(items: Sequence[str], size: int = _CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def put_blobs(blobs: BlobStore, contents: Sequence[bytes]) -> None:
    """Store every content blob; returns once all are durable."""
    if contents:
        await map_bounded(blobs.put, contents)


async def acquire_lease(db: Database, workspace_id: str, owner: str) -> Lease:
    """Become the workspace's writer: bump its fencing token, fencing every older session out."""
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
        manifest_sha = None
        if row.head_version > 0:
            manifest_sha = await session.scalar(
                select(Version.manifest_sha256).where(
                    Version.workspace_id == workspace_id, Version.number == row.head_version
                )
            )
    return Lease(epoch=row.lease_epoch, head_version=row.head_version, manifest_sha256=manifest_sha)


async def release_lease(db: Database, workspace_id: str, epoch: int) -> None:
    """Clear the owner if this session still holds the lease (the epoch is never reused)."""
    async with db.session() as session, session.begin():
        await session.execute(
            update(Workspace)
            .where(Workspace.id == workspace_id, Workspace.lease_epoch == epoch)
            .values(lease_owner=None)
            .execution_options(synchronize_session=False)
        )


async def load_manifest(db: Database, blobs: BlobStore, workspace_id: str, number: int) -> Manifest:
    """The file set of version ``number`` (0 is the empty workspace before any version)."""
    if number == 0:
        return EMPTY_MANIFEST
    async with db.session() as session:
        digest = await session.scalar(
            select(Version.manifest_sha256).where(
                Version.workspace_id == workspace_id, Version.number == number
            )
        )
    if digest is None:
        raise VersionNotFound(f"workspace {workspace_id} has no version {number}")
    return Manifest.decode(await blobs.get(digest))


async def commit_version(
    db: Database,
    *,
    workspace_id: str,
    epoch: int,
    base_version: int,
    manifest: Manifest,
    manifest_sha256: str,
    changes: Sequence[Change],
    author: Author,
    message: str,
    restored_from: int | None = None,
) -> VersionInfo:
    """Record version ``base_version + 1`` with ``changes``; the blobs must already be stored."""
    now = utcnow()
    number = base_version + 1
    async with db.session() as session, session.begin():
        bumped = await _execute_update(
            session,
            update(Workspace)
            .where(
                Workspace.id == workspace_id,
                Workspace.lease_epoch == epoch,
                Workspace.head_version == base_version,
                Workspace.deleted_at.is_(None),
            )
            .values(head_version=number, total_bytes=manifest.total_bytes, updated_at=now),
        )
        if bumped == 0:
            await _explain_fenced(session, workspace_id, epoch)
        version = Version(
            workspace_id=workspace_id,
            number=number,
            author_id=author.user_id,
            author_kind=author.kind,
            message=message,
            created_at=now,
            parent_number=base_version or None,
            restored_from=restored_from,
            manifest_sha256=manifest_sha256,
            file_count=len(manifest),
            total_bytes=manifest.total_bytes,
        )
        session.add(version)
        await session.flush()
        await _record_changes(session, workspace_id, version.id, changes, manifest, now)
    return version_info(version, changes)


async def _record_changes(
    session: AsyncSession,
    workspace_id: str,
    version_id: str,
    changes: Sequence[Change],
    manifest: Manifest,
    now: datetime,
) -> None:
    rows: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for change in changes:
        entry: Entry | None = manifest.get(change.path)
        rows.append(
            {
                "version_id": version_id,
                "path": change.path,
                "change": change.kind,
                "sha256": change.after_sha256,
                "before_sha256": change.before_sha256,
                "size": entry.size if entry else None,
                "mode": entry.mode if entry else None,
            }
        )
        if entry is not None:
            entries.append(
                {
                    "workspace_id": workspace_id,
                    "path": change.path,
                    "sha256": entry.sha256,
                    "size": entry.size,
                    "mode": entry.mode,
                    "modified_at": now,
                }
            )
    if rows:
        await session.execute(insert(VersionFile), rows)
    for paths in chunks([change.path for change in changes]):
        await session.execute(
            delete(FileEntry)
            .where(FileEntry.workspace_id == workspace_id, FileEntry.path.in_(paths))
            .execution_options(synchronize_session=False)
        )
    if entries:
        await session.execute(insert(FileEntry), entries)


async def _execute_update(session: AsyncSession, statement: Any) -> int:
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return cast(CursorResult[Any], result).rowcount


async def _explain_fenced(session: AsyncSession, workspace_id: str, epoch: int) -> None:
    row = (
        await session.execute(
            select(Workspace.lease_epoch, Workspace.deleted_at).where(Workspace.id == workspace_id)
        )
    ).one_or_none()
    if row is None or row.deleted_at is not None:
        raise WorkspaceNotFound(f"workspace {workspace_id} does not exist")
    raise LeaseLost(
        f"workspace {workspace_id}: lease epoch {epoch} was superseded by {row.lease_epoch}"
        if row.lease_epoch != epoch
        else f"workspace {workspace_id}: head moved under this session"
    )


async def load_version_info(
    db: Database, workspace_id: str, number: int, *, with_changes: bool = True
) -> VersionInfo:
    """Version ``number``; version 0 (before any change) is described as an empty version."""
    async with db.session() as session:
        version = await session.scalar(
            select(Version).where(Version.workspace_id == workspace_id, Version.number == number)
        )
        if version is None:
            if number == 0:
                return VersionInfo(workspace_id, 0, utcnow(), None, "system", "")
            raise VersionNotFound(f"workspace {workspace_id} has no version {number}")
        changes: list[Change] = []
        if with_changes:
            changes = await load_changes(session, version.id)
    return version_info(version, changes)


async def load_changes(session: AsyncSession, version_id: str) -> list[Change]:
    rows = await session.scalars(select(VersionFile).where(VersionFile.version_id == version_id))
    # Sorted here, not in SQL: PostgreSQL collations and SQLite order strings differently.
    return sorted(
        [
            Change(
                path=row.path,
                kind=cast(ChangeKind, row.change),
                before_sha256=row.before_sha256,
                after_sha256=row.sha256,
                size=row.size,
            )
            for row in rows
        ],
        key=lambda change: change.path,
    )


def version_info(version: Version, changes: Sequence[Change] = ()) -> VersionInfo:
    return VersionInfo(
        workspace_id=version.workspace_id,
        number=version.number,
        created_at=version.created_at,
        author_id=version.author_id,
        author_kind=version.author_kind,
        message=version.message,
        restored_from=version.restored_from,
        changes=tuple(changes),
    )
