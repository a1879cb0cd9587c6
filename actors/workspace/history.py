"""Reading a workspace's versions back from the database: file sets, change lists, version info.

A version stores only its changes (``version_files``); the file set of version N is the newest
change of each path among versions 1..N, deletions dropped. Those rows never change once
committed, so a replay up to a committed N needs no snapshot isolation. The head's file set is
also kept whole in ``file_entries`` (written in each version's own transaction), which is what
a session reads when it opens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from actors.workspace.api import Change, ChangeKind, VersionInfo, VersionNotFound
from actors.workspace.manifest import Entry, Manifest
from state.db import Database
from state.models import FileEntry, Version, VersionFile, Workspace, utcnow

__all__ = [
    "EMPTY_MANIFEST",
    "current_manifest",
    "head_manifest",
    "load_changes",
    "load_manifest",
    "load_version_info",
    "version_info",
]

EMPTY_MANIFEST = Manifest()


async def head_manifest(session: AsyncSession, workspace_id: str) -> Manifest:
    """The file set of the head, from the file index (consistent inside the caller's
    transaction, e.g. the lease transaction that fenced every other writer out)."""
    rows = await session.execute(
        select(FileEntry.path, FileEntry.sha256, FileEntry.size, FileEntry.mode).where(
            FileEntry.workspace_id == workspace_id
        )
    )
    return Manifest({row.path: Entry(row.sha256, row.size, row.mode) for row in rows})


async def current_manifest(db: Database, workspace_id: str) -> tuple[int, Manifest] | None:
    """The head's number and file set, read in one statement (so they belong together);
    None if the workspace does not exist or is deleted."""
    async with db.session() as session:
        rows = (
            await session.execute(
                select(
                    Workspace.head_version,
                    FileEntry.path,
                    FileEntry.sha256,
                    FileEntry.size,
                    FileEntry.mode,
                )
                .outerjoin(FileEntry, FileEntry.workspace_id == Workspace.id)
                .where(Workspace.id == workspace_id, Workspace.deleted_at.is_(None))
            )
        ).all()
    if not rows:
        return None
    entries = {row.path: Entry(row.sha256, row.size, row.mode) for row in rows if row.path}
    return rows[0].head_version, Manifest(entries)


async def load_manifest(db: Database, workspace_id: str, number: int) -> Manifest:
    """The file set of version ``number`` (0 is the empty workspace before any version).

    Raises ``VersionNotFound`` if the workspace has no such version."""
    if number == 0:
        return EMPTY_MANIFEST
    newest_first = func.row_number().over(
        partition_by=VersionFile.path, order_by=Version.number.desc()
    )
    changes = (
        select(
            VersionFile.path,
            VersionFile.sha256,
            VersionFile.size,
            VersionFile.mode,
            newest_first.label("rank"),
        )
        .join(Version, Version.id == VersionFile.version_id)
        .where(Version.workspace_id == workspace_id, Version.number <= number)
        .subquery()
    )
    async with db.session() as session:
        exists = await session.scalar(
            select(Version.id).where(Version.workspace_id == workspace_id, Version.number == number)
        )
        if exists is None:
            raise VersionNotFound(f"workspace {workspace_id} has no version {number}")
        rows = await session.execute(
            select(changes.c.path, changes.c.sha256, changes.c.size, changes.c.mode).where(
                changes.c.rank == 1, changes.c.sha256.is_not(None)
            )
        )
        return Manifest({row.path: Entry(row.sha256, int(row.size), int(row.mode)) for row in rows})


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
