"""The WorkspaceHost actor: a thin Ray shell over ``WorkspaceHostCore``.

One host process holds many workspace sessions (a Ray actor costs a whole worker process, so a
session is a plain object inside a host, not an actor of its own). Hosts are named
``ws-host:<n>``, detached (they outlive the gateway replica that created them) and restarted by
Ray when they die; a restarted host reopens sessions from durable state on the next call.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import ray
import structlog
from pydantic import BaseModel
from ray.util import metrics

from actors.workspace.api import Author, SessionInfo, VersionInfo, WriteResult
from actors.workspace.directory import host_name
from actors.workspace.host import WorkspaceHostCore
from actors.workspace.settings import WorkspaceSettings
from state.blobs import open_blob_store
from state.db import Database
from state.settings import BlobSettings, DatabaseSettings

__all__ = ["HostConfig", "WorkspaceHost", "WorkspaceHostShell"]

log = structlog.get_logger("workspace.host")
_T = TypeVar("_T")
METRICS_INTERVAL_S = 5.0


class HostConfig(BaseModel):
    """What a host needs to reach durable state; resolved by the composition root."""

    db: DatabaseSettings
    blob: BlobSettings
    workspace: WorkspaceSettings


class WorkspaceHostShell:
    """The actor class. Opens its core lazily on the first call (actor constructors are sync)."""

    def __init__(
        self, name: str, config: HostConfig, setup_process: Callable[[], None] | None = None
    ) -> None:
        if setup_process is not None:
            setup_process()
        self._name = name
        self._config = config
        self._core: WorkspaceHostCore | None = None
        self._opening = asyncio.Lock()
        self._node_id = ray.get_runtime_context().get_node_id()
        tags = {"host": name}
        self._open_sessions = metrics.Gauge(
            "vibecode_workspace_open_sessions",
            description="Workspace sessions open in this host.",
            tag_keys=("host",),
        ).set_default_tags(tags)
        self._writes = metrics.Counter(
            "vibecode_workspace_writes",
            description="Acknowledged workspace writes (each durable before its ack).",
            tag_keys=("host", "operation"),
        ).set_default_tags(tags)
        self._flush = metrics.Histogram(
            "vibecode_workspace_flush_seconds",
            description="Time from receiving a write to its durable acknowledgement.",
            boundaries=[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
            tag_keys=("host", "operation"),
        ).set_default_tags(tags)
        self._metrics_task: asyncio.Task[None] | None = None

    async def _host(self) -> WorkspaceHostCore:
        if self._core is not None:
            return self._core
        async with self._opening:
            if self._core is None:
                db = Database.from_settings(self._config.db)
                blobs = open_blob_store(self._config.blob)
                core = WorkspaceHostCore(
                    self._name,
                    db=db,
                    blobs=blobs,
                    settings=self._config.workspace,
                    node_id=self._node_id,
                    purger=self._name == host_name(0),
                )
                await core.start()
                self._core = core
                self._metrics_task = asyncio.create_task(self._report_forever())
                log.info("workspace_host.started", host=self._name, node_id=self._node_id)
        return self._core

    async def _report_forever(self) -> None:
        while True:
            if self._core is not None:
                self._open_sessions.set(self._core.stats().open_sessions)
            await asyncio.sleep(METRICS_INTERVAL_S)

    async def _timed(self, operation: str, call: Awaitable[_T]) -> _T:
        started = time.perf_counter()
        result = await call
        self._flush.observe(time.perf_counter() - started, tags={"operation": operation})
        self._writes.inc(tags={"operation": operation})
        return result

    # -- the WorkspaceWriter operations --------------------------------------------------------

    async def write_file(
        self, workspace_id: str, path: str, data: bytes, *, if_match: str | None, author: Author
    ) -> WriteResult:
        host = await self._host()
        return await self._timed(
            "write",
            host.write_file(workspace_id, path, data, if_match=if_match, author=author),
        )

    async def delete_file(
        self, workspace_id: str, path: str, *, if_match: str | None, author: Author
    ) -> VersionInfo:
        host = await self._host()
        return await self._timed(
            "delete", host.delete_file(workspace_id, path, if_match=if_match, author=author)
        )

    async def move_file(
        self, workspace_id: str, source: str, destination: str, *, author: Author
    ) -> VersionInfo:
        host = await self._host()
        return await self._timed(
            "move", host.move_file(workspace_id, source, destination, author=author)
        )

    async def apply_batch(
        self,
        workspace_id: str,
        files: dict[str, bytes | None],
        *,
        author: Author,
        message: str,
        replace_all: bool = False,
    ) -> VersionInfo:
        host = await self._host()
        return await self._timed(
            "batch",
            host.apply_batch(
                workspace_id, files, author=author, message=message, replace_all=replace_all
            ),
        )

    async def restore(self, workspace_id: str, version: int, *, author: Author) -> VersionInfo:
        host = await self._host()
        return await self._timed("restore", host.restore(workspace_id, version, author=author))

    async def close(self, workspace_id: str) -> None:
        host = await self._host()
        await host.close(workspace_id)

    async def sessions(self) -> list[SessionInfo]:
        host = await self._host()
        return await host.sessions()

    async def ping(self) -> dict[str, Any]:
        host = await self._host()
        stats = host.stats()
        return {
            "host": self._name,
            "node_id": self._node_id,
            "pid": os.getpid(),
            "open_sessions": stats.open_sessions,
        }


# The Ray shell. Options (name, namespace, detached lifetime, restarts) are set where it is created.
WorkspaceHost = ray.remote(WorkspaceHostShell)
