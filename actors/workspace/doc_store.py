"""``DocumentStore`` (collab's persistence port) over the database: ``doc_snapshots`` holds a
document's compacted state and synced file contents, ``doc_updates`` its update log."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from collab.persistence import StoredDocument
from state.db import Database
from state.models import DocSnapshot, DocUpdate, utcnow

__all__ = ["DatabaseDocumentStore"]


def _synced(value: str) -> tuple[str, ...]:
    return tuple(part for part in value.split(",") if part)


class DatabaseDocumentStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self, workspace_id: str, path: str) -> StoredDocument | None:
        async with self._db.session() as session:
            head = await session.scalar(
                select(DocSnapshot).where(
                    DocSnapshot.workspace_id == workspace_id, DocSnapshot.path == path
                )
            )
            if head is None:
                return None
            rows = await session.execute(
                select(DocUpdate.seq, DocUpdate.update)
                .where(
                    DocUpdate.workspace_id == workspace_id,
                    DocUpdate.path == path,
                    DocUpdate.seq > head.snapshot_seq,
                )
                .order_by(DocUpdate.seq)
            )
            updates = tuple((int(seq), bytes(data)) for seq, data in rows)
        return StoredDocument(head.snapshot, head.snapshot_seq, updates, _synced(head.synced))

    async def append(
        self,
        workspace_id: str,
        path: str,
        seq: int,
        update: bytes,
        *,
        synced: tuple[str, ...] | None = None,
    ) -> None:
        async with self._db.session() as session, session.begin():
            head = await self._head(session, workspace_id, path)
            if synced is not None:
                head.synced = ",".join(synced)
            session.add(DocUpdate(workspace_id=workspace_id, path=path, seq=seq, update=update))

    async def compact(
        self, workspace_id: str, path: str, snapshot: bytes, *, through_seq: int
    ) -> None:
        async with self._db.session() as session, session.begin():
            head = await self._head(session, workspace_id, path)
            head.snapshot, head.snapshot_seq = snapshot, through_seq
            await session.execute(
                delete(DocUpdate).where(
                    DocUpdate.workspace_id == workspace_id,
                    DocUpdate.path == path,
                    DocUpdate.seq <= through_seq,
                )
            )

    async def mark_synced(self, workspace_id: str, path: str, synced: tuple[str, ...]) -> None:
        async with self._db.session() as session, session.begin():
            result = await session.execute(
                update(DocSnapshot)
                .where(DocSnapshot.workspace_id == workspace_id, DocSnapshot.path == path)
                .values(synced=",".join(synced), updated_at=utcnow())
            )
            if not getattr(result, "rowcount", 0):
                session.add(
                    DocSnapshot(
                        workspace_id=workspace_id,
                        path=path,
                        snapshot_seq=0,
                        synced=",".join(synced),
                    )
                )

    async def delete(self, workspace_id: str, path: str) -> None:
        async with self._db.session() as session, session.begin():
            for model in (DocUpdate, DocSnapshot):
                await session.execute(
                    delete(model).where(model.workspace_id == workspace_id, model.path == path)
                )

    @staticmethod
    async def _head(session: AsyncSession, workspace_id: str, path: str) -> DocSnapshot:
        head = await session.scalar(
            select(DocSnapshot).where(
                DocSnapshot.workspace_id == workspace_id, DocSnapshot.path == path
            )
        )
        if head is None:
            head = DocSnapshot(workspace_id=workspace_id, path=path, snapshot_seq=0, synced="")
            session.add(head)
            await session.flush()
        return head
