"""WorkspaceReader: reads of durable workspace state, straight from the database and blob store.

No session or lease is involved: every acknowledged write is durable, so a read that starts after
the acknowledgement sees it. Deleted workspaces read as ``WorkspaceNotFound``.
"""

from __future__ import annotations

from sqlalchemy import select

from actors.workspace.api import (
    Change,
    FileInfo,
    FileNotFoundInWorkspace,
    VersionInfo,
    VersionNotFound,
    WorkspaceNotFound,
)
from actors.workspace.archive import write_zip
from actors.workspace.diff import DEFAULT_MAX_DIFF_BYTES, FileDiff, unified_diff
from actors.workspace.history import (
    current_manifest,
    load_changes,
    load_manifest,
    version_info,
)
from actors.workspace.manifest import Manifest, diff_manifests
from actors.workspace.paths import validate_path
from state.blobs import BlobStore
from state.db import Database
from state.models import FileEntry, Version, Workspace
from state.threads import run_sync

__all__ = ["WorkspaceReader"]


class WorkspaceReader:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self._db = db
        self._blobs = blobs

    async def head_version(self, workspace_id: str) -> int:
        async with self._db.session() as session:
            head = await session.scalar(
                select(Workspace.head_version).where(
                    Workspace.id == workspace_id, Workspace.deleted_at.is_(None)
                )
            )
        if head is None:
            raise WorkspaceNotFound(f"workspace {workspace_id} does not exist")
        return head

    async def list_files(self, workspace_id: str) -> list[FileInfo]:
        """Every file of the current version, sorted by path (code point order)."""
        await self.head_version(workspace_id)
        async with self._db.session() as session:
            rows = await session.scalars(
                select(FileEntry).where(FileEntry.workspace_id == workspace_id)
            )
            files = [_file_info(row) for row in rows]
        return sorted(files, key=lambda info: info.path)

    async def stat(self, workspace_id: str, path: str) -> FileInfo:
        path = validate_path(path)
        async with self._db.session() as session:
            # One query on the hot path; a miss then tells a deleted workspace from a missing file.
            row = await session.scalar(
                select(FileEntry)
                .join(Workspace, Workspace.id == FileEntry.workspace_id)
                .where(
                    FileEntry.workspace_id == workspace_id,
                    FileEntry.path == path,
                    Workspace.deleted_at.is_(None),
                )
            )
        if row is None:
            await self.head_version(workspace_id)
            raise FileNotFoundInWorkspace(f"no such file: {path!r}")
        return _file_info(row)

    async def read_file(self, workspace_id: str, path: str) -> tuple[FileInfo, bytes]:
        """The current file at ``path`` and its bytes (verified against the sha256)."""
        info = await self.stat(workspace_id, path)
        return info, await self._blobs.get(info.sha256)

    async def list_versions(
        self, workspace_id: str, *, limit: int = 50, before: int | None = None
    ) -> list[VersionInfo]:
        """Versions newest first (without their changes); ``before`` pages backwards."""
        await self.head_version(workspace_id)
        query = select(Version).where(Version.workspace_id == workspace_id)
        if before is not None:
            query = query.where(Version.number < before)
        query = query.order_by(Version.number.desc()).limit(limit)
        async with self._db.session() as session:
            return [version_info(row) for row in await session.scalars(query)]

    async def get_version(self, workspace_id: str, number: int) -> VersionInfo:
        """Version ``number`` with the changes it made."""
        await self.head_version(workspace_id)
        async with self._db.session() as session:
            row = await session.scalar(
                select(Version).where(
                    Version.workspace_id == workspace_id, Version.number == number
                )
            )
            if row is None:
                raise VersionNotFound(f"workspace {workspace_id} has no version {number}")
            return version_info(row, await load_changes(session, row.id))

    async def manifest(self, workspace_id: str, version: int | None = None) -> Manifest:
        """The file set of ``version`` (default: the head; 0: the empty workspace)."""
        head = await self.head_version(workspace_id)
        number = head if version is None else version
        if not 0 <= number <= head:
            raise VersionNotFound(f"workspace {workspace_id} has no version {number}")
        if number == head:  # The file index holds it whole, unless a write just moved on.
            current = await current_manifest(self._db, workspace_id)
            if current is not None and current[0] == number:
                return current[1]
        return await load_manifest(self._db, workspace_id, number)

    async def changes(self, workspace_id: str, a: int, b: int) -> list[Change]:
        """What turns version ``a`` into version ``b`` (either may be older), sorted by path."""
        before = await self.manifest(workspace_id, a)
        after = await self.manifest(workspace_id, b)
        return diff_manifests(before, after)

    async def diff(
        self, workspace_id: str, a: int, b: int, *, max_bytes: int = DEFAULT_MAX_DIFF_BYTES
    ) -> list[FileDiff]:
        """``changes(a, b)``, each with a unified diff when both sides are small text files."""
        before = await self.manifest(workspace_id, a)
        after = await self.manifest(workspace_id, b)
        result: list[FileDiff] = []
        for change in diff_manifests(before, after):
            sides = [side[change.path] for side in (before, after) if change.path in side]
            if any(entry.size > max_bytes for entry in sides):
                result.append(FileDiff(change, None, truncated=True))
                continue
            old = await self._blob_or_none(change.before_sha256)
            new = await self._blob_or_none(change.after_sha256)
            result.append(unified_diff(change, old, new, max_bytes=max_bytes))
        return result

    async def archive(self, workspace_id: str, version: int | None = None) -> bytes:
        """A zip of the files of ``version`` (default: the head)."""
        manifest = await self.manifest(workspace_id, version)
        files = [
            (path, await self._blobs.get(entry.sha256), entry.mode)
            for path, entry in sorted(manifest.items())
        ]
        return await run_sync(write_zip, files)

    async def _blob_or_none(self, digest: str | None) -> bytes | None:
        return None if digest is None else await self._blobs.get(digest)


def _file_info(row: FileEntry) -> FileInfo:
    return FileInfo(
        path=row.path, size=row.size, sha256=row.sha256, modified_at=row.modified_at, mode=row.mode
    )
