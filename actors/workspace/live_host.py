"""The live documents of every session in one host: which ``LiveDocuments`` belongs to which
session, created on first use and closed (flushing pending edits) before its session closes.
It also tells the workspace's room about every committed version (``files.changed``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import structlog

from actors.workspace.api import Author
from actors.workspace.doc_store import DatabaseDocumentStore
from actors.workspace.live import LiveDocuments
from actors.workspace.manifest import Entry
from actors.workspace.realtime import Realtime
from actors.workspace.session import WorkspaceSession
from actors.workspace.settings import WorkspaceSettings
from collab.persistence import DocumentStore
from state.blobs import BlobStore
from state.db import Database

__all__ = ["LiveHost"]

log = structlog.get_logger("actors.workspace.live")


class LiveHost:
    def __init__(
        self,
        *,
        db: Database,
        blobs: BlobStore,
        settings: WorkspaceSettings,
        realtime: Realtime | None = None,
        store: DocumentStore | None = None,
    ) -> None:
        self._store: DocumentStore = store or DatabaseDocumentStore(db)
        self._blobs = blobs
        self._settings = settings
        self._realtime = realtime
        self._live: dict[str, LiveDocuments] = {}

    def of(self, session: WorkspaceSession) -> LiveDocuments:
        """The live documents of ``session`` (a reopened session gets fresh ones)."""
        live = self._live.get(session.workspace_id)
        if live is not None and live.session is session:
            return live
        if live is not None:
            live.abandon()
        live = LiveDocuments(
            session,
            store=self._store,
            blobs=self._blobs,
            settings=self._settings,
            broadcast=self._realtime.broadcast if self._realtime is not None else None,
        )
        session.commit_listeners.append(live.file_committed)
        self._live[session.workspace_id] = live
        return live

    def watch(self, session: WorkspaceSession) -> None:
        """Publish ``files.changed`` for every version ``session`` commits from now on."""
        realtime = self._realtime
        if realtime is None:
            return
        workspace_id = session.workspace_id
        # The newest publish; each waits for the one before, so the room hears versions in order
        # while the write that made them is acknowledged without waiting for the channel.
        latest: list[asyncio.Task[None]] = []

        async def publish(data: dict[str, object], before: asyncio.Task[None] | None) -> None:
            if before is not None:
                await asyncio.wait([before])
            try:
                await realtime.publish(workspace_id, "files.changed", data)
            except Exception as exc:  # noqa: BLE001 - events are best effort; the version is durable
                log.warning("collab.event_failed", workspace_id=workspace_id, error=str(exc))

        async def files_changed(
            changes: Mapping[str, Entry | None], _contents: Mapping[str, bytes], author: Author
        ) -> None:
            data: dict[str, object] = {
                "changes": [
                    {"path": path, "kind": "deleted" if entry is None else "written"}
                    for path, entry in changes.items()
                ],
                "version": session.head_version,
                "author": {"user_id": author.user_id, "kind": author.kind},
            }
            before = latest[0] if latest else None
            latest[:] = [asyncio.create_task(publish(data, before))]

        session.commit_listeners.append(files_changed)

    async def close(self, workspace_id: str) -> None:
        """Flush pending edits to files; call while the session can still write."""
        live = self._live.pop(workspace_id, None)
        if live is not None:
            await live.aclose()

    def abandon(self, workspace_id: str) -> None:
        live = self._live.pop(workspace_id, None)
        if live is not None:
            live.abandon()

    @property
    def open_documents(self) -> int:
        return sum(live.open_documents for live in self._live.values())
