"""Purging soft-deleted workspaces: their rows, then the blobs nobody else references.

Blobs are content-addressed and therefore shared: the same bytes written in two workspaces are one
blob. A blob is deleted only if no remaining version (its changes or its manifest) or file index
row references it. Every blob a workspace ever referenced is some ``VersionFile.sha256`` of its
own (a version's file set only holds content that one of its versions added or modified) or
the manifest blob of a version made before revision 0005 (``Version.manifest_sha256``; NULL
for newer versions), so those two columns (both indexed) decide.

Known window: a writer that puts a blob identical to a candidate and commits its reference
between this purge's reference check and its blob delete would lose that blob. Purges run rarely
(after ``delete_grace_s``), so the window is small; a mark-and-sweep pass would close it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, delete, select

from actors.workspace.store import chunks
from state.blobs import BlobStore
from state.db import Database
from state.models import FileEntry, Version, VersionFile, Workspace

__all__ = ["purge_deleted_workspaces"]

log = structlog.get_logger("actors.workspace")


async def purge_deleted_workspaces(db: Database, blobs: BlobStore, *, older_than: datetime) -> int:
    """Purge every workspace soft-deleted before ``older_than``; return how many were purged."""
    async with db.session() as session:
        doomed = list(
            await session.scalars(
                select(Workspace.id).where(
                    Workspace.deleted_at.is_not(None), Workspace.deleted_at < older_than
                )
            )
        )
    purged = 0
    for workspace_id in doomed:
        blobs_deleted = await _purge_one(db, blobs, workspace_id, older_than)
        if blobs_deleted is not None:
            purged += 1
            log.info("workspace.purged", workspace_id=workspace_id, blobs_deleted=blobs_deleted)
    return purged


async def _purge_one(
    db: Database, blobs: BlobStore, workspace_id: str, older_than: datetime
) -> int | None:
    """Delete one workspace and its unshared blobs; None if it was restored meanwhile."""
    async with db.session() as session, session.begin():
        contents = await session.scalars(
            select(VersionFile.sha256)
            .join(Version, Version.id == VersionFile.version_id)
            .where(Version.workspace_id == workspace_id, VersionFile.sha256.is_not(None))
        )
        manifests = await session.scalars(
            select(Version.manifest_sha256).where(Version.workspace_id == workspace_id)
        )
        indexed = await session.scalars(
            select(FileEntry.sha256).where(FileEntry.workspace_id == workspace_id)
        )
        candidates = {d for d in (*contents, *manifests, *indexed) if d is not None}
        result = await session.execute(
            delete(Workspace)
            .where(
                Workspace.id == workspace_id,
                Workspace.deleted_at.is_not(None),
                Workspace.deleted_at < older_than,
            )
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], result).rowcount == 0:
            return None
    # Only after the rows are gone: from here on nothing of this workspace references a blob.
    unreferenced = candidates - await _still_referenced(db, sorted(candidates))
    for digest in sorted(unreferenced):
        await blobs.delete(digest)
    return len(unreferenced)


async def _still_referenced(db: Database, digests: list[str]) -> set[str]:
    referenced: set[str] = set()
    async with db.session() as session:
        for batch in chunks(digests):
            # FileEntry needs no check: the index only holds content some version added.
            for column in (VersionFile.sha256, Version.manifest_sha256):
                rows = await session.scalars(select(column).where(column.in_(batch)).distinct())
                referenced.update(d for d in rows if d is not None)
    return referenced
