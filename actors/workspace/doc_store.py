"""``DocumentStore`` (collab's persistence port) over the database: ``doc_snapshots`` holds a
document's compacted state and synced file contents, ``doc_updates`` its update log.

An append is on every keystroke's path (durable before anyone else sees it), so once a document's
head row is known to exist, an append is one INSERT in its own transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from collab.errors import SequenceTaken
from collab.persistence import StoredDocument
from state.db import Database
from state.models import DocSnapshot, DocUpdate, utcnow

__all__ = ["DatabaseDocumentStore"]


def _synced(value: str) -> tuple[str, ...]:
    return tuple(part for part in value.split(",") if part)


@asynccontextmanager
async def _sequence_checked(seq: int, path: str) -> AsyncIterator[None]:
    try:
        yield
    except IntegrityError as exc:
        # (The one other constraint an append can break: its workspace was deleted meanwhile.)
        raise SequenceTaken(f"update {seq} of {path!r} cannot be stored: {exc.orig}") from exc


class DatabaseDocumentStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        # Documents whose head row exists (heads go only with ``delete`` or their workspace).
        self._heads: set[tuple[str, str]] = set()

    async def load(self, workspace_id: str, path: str) -> StoredDocument | None:
        async with self._db.session() as session:
            head = await session.scalar(
                select(DocSnapshot).where(
                    DocSnapshot.workspace_id == workspace_id, DocSnapshot.path == path
                )
            )
            if head is None:
                return None
            self._heads.add((workspace_id, path))
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
        row = {"workspace_id": workspace_id, "path": path, "seq": seq, "update": update}
        async with _sequence_checked(seq, path):
            if synced is None and (workspace_id, path) in self._heads:
                async with self._db.engine.begin() as connection:
                    await connection.execute(insert(DocUpdate).values(**row))
                return
            async with self._db.session() as session, session.begin():
                head = await self._head(session, workspace_id, path)
                if synced is not None:
                    head.synced = ",".join(synced)
                await session.execute(insert(DocUpdate).values(**row))
        self._heads.add((workspace_id, path))

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
        self._heads.add((workspace_id, path))

    async def delete(self, workspace_id: str, path: str) -> None:
        self._heads.discard((workspace_id, path))
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
