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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import ray
import structlog
from pydantic import BaseModel
from ray.util import metrics

from actors.sandbox_pool.lease import SandboxLeaser
from actors.workspace.api import (
    Author,
    ExecOutcome,
    SessionInfo,
    SyncReport,
    VersionInfo,
    WriteResult,
)
from actors.workspace.channel import ChannelAddress, ChannelServer
from actors.workspace.directory import host_name
from actors.workspace.host import WorkspaceHostCore
from actors.workspace.live import CollabReply
from actors.workspace.realtime import Realtime
from actors.workspace.settings import WorkspaceSettings
from sandbox import (
    ExecRequest,
    OutputChunk,
    ProcessInfo,
    ProcessLogs,
    SandboxSettings,
    StartRequest,
)
from state.blobs import open_blob_store
from state.db import Database
from state.settings import BlobSettings, DatabaseSettings, RedisSettings

__all__ = ["HostConfig", "WorkspaceHost", "WorkspaceHostShell"]

log = structlog.get_logger("workspace.host")
_T = TypeVar("_T")
METRICS_INTERVAL_S = 5.0


class HostConfig(BaseModel):
    """What a host needs to reach durable state; resolved by the composition root."""

    db: DatabaseSettings
    blob: BlobSettings
    workspace: WorkspaceSettings
    # None: no sandboxes (exec answers 503). Otherwise sessions lease from their node's pool.
    sandbox: SandboxSettings | None = None
    # Set: live-document edits made by file writes reach editors through Redis pub/sub.
    redis: RedisSettings = RedisSettings()


class WorkspaceHostShell:
    """The actor class. Opens its core lazily on the first call (actor constructors are sync)."""

    def __init__(
        self,
        name: str,
        config: HostConfig,
        setup_process: Callable[[], None] | None = None,
        *,
        namespace: str | None = None,
    ) -> None:
        """``namespace``: where this host's name lives (and so the kv-bus it publishes to)."""
        if setup_process is not None:
            setup_process()
        self._name = name
        self._namespace = namespace
        self._config = config
        self._setup_process = setup_process
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
        self._channel = ChannelServer(self._dispatch)

    async def _dispatch(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await getattr(self, method)(*args, **kwargs)

    async def channel_address(self) -> ChannelAddress | None:
        """Where callers on this node reach this host without Ray (see ``channel.py``)."""
        path = await self._channel.start(self._name)
        return None if path is None else (self._node_id, str(path))

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
                    sandboxes=self._leaser(),
                    realtime=self._realtime(),
                )
                await core.start()
                self._core = core
                self._metrics_task = asyncio.create_task(self._report_forever())
                log.info("workspace_host.started", host=self._name, node_id=self._node_id)
        return self._core

    def _leaser(self) -> SandboxLeaser | None:
        """The pool actor of this host's node: the trees it binds are on this node's disk."""
        settings = self._config.sandbox
        if settings is None:
            return None
        from actors.sandbox_pool.actor import RaySandboxLeaser, pool_handle

        namespace = ray.get_runtime_context().namespace
        handle = pool_handle(
            self._node_id, settings, namespace=namespace, setup_process=self._setup_process
        )
        return RaySandboxLeaser(handle, settings)

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
        modes: dict[str, int] | None = None,
    ) -> VersionInfo:
        host = await self._host()
        return await self._timed(
            "batch",
            host.apply_batch(
                workspace_id,
                files,
                author=author,
                message=message,
                replace_all=replace_all,
                modes=modes,
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

    async def collab_open(self, workspace_id: str, path: str) -> bytes:
        host = await self._host()
        return await host.collab_open(workspace_id, path)

    async def collab_receive(
        self, workspace_id: str, path: str, message: bytes, *, user_id: str, can_write: bool
    ) -> CollabReply:
        host = await self._host()
        return await host.collab_receive(
            workspace_id, path, message, user_id=user_id, can_write=can_write
        )

    def _realtime(self) -> Realtime | None:
        """Live edits and file events reach every gateway replica: through Redis when
        configured, else through the cluster's kv-bus actor."""
        from actors.kv_bus import open_cluster_kv
        from actors.workspace.realtime import KvRealtime

        namespace = self._namespace or ray.get_runtime_context().namespace
        kv = open_cluster_kv(self._config.redis, namespace=namespace)
        return KvRealtime(kv, origin=self._name)

    # -- sandbox execution -----------------------------------------------------------------------

    async def exec(self, workspace_id: str, request: ExecRequest, *, author: Author) -> ExecOutcome:
        host = await self._host()
        return await self._timed("exec", host.exec(workspace_id, request, author=author))

    async def exec_stream(
        self, workspace_id: str, request: ExecRequest, *, author: Author
    ) -> AsyncIterator[OutputChunk | ExecOutcome]:
        host = await self._host()
        async for event in host.exec_stream(workspace_id, request, author=author):
            yield event

    async def start_process(
        self,
        workspace_id: str,
        request: StartRequest,
        *,
        author: Author,
        client_token: str | None = None,
    ) -> ProcessInfo:
        host = await self._host()
        return await host.start_process(
            workspace_id, request, author=author, client_token=client_token
        )

    async def list_processes(self, workspace_id: str) -> list[ProcessInfo]:
        return await (await self._host()).list_processes(workspace_id)

    async def read_logs(self, workspace_id: str, process_id: str, offset: int = 0) -> ProcessLogs:
        return await (await self._host()).read_logs(workspace_id, process_id, offset)

    async def follow_process(
        self, workspace_id: str, process_id: str, offset: int = 0
    ) -> AsyncIterator[bytes]:
        host = await self._host()
        async for data in host.follow_process(workspace_id, process_id, offset):
            yield data

    async def write_stdin(self, workspace_id: str, process_id: str, data: bytes) -> None:
        await (await self._host()).write_stdin(workspace_id, process_id, data)

    async def resize_terminal(
        self, workspace_id: str, process_id: str, *, cols: int, rows: int
    ) -> None:
        host = await self._host()
        await host.resize_terminal(workspace_id, process_id, cols=cols, rows=rows)

    async def kill_process(
        self, workspace_id: str, process_id: str, *, author: Author
    ) -> SyncReport:
        host = await self._host()
        return await host.kill_process(workspace_id, process_id, author=author)

    async def sync(self, workspace_id: str, *, author: Author) -> SyncReport:
        return await (await self._host()).sync(workspace_id, author=author)

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
