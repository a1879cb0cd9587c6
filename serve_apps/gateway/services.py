"""The long-lived collaborators of a gateway replica, opened at startup and closed at shutdown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from accounts.service import AccountService
from actors.workspace.api import WorkspaceWriter
from actors.workspace.catalog import WorkspaceCatalog
from actors.workspace.reader import WorkspaceReader
from actors.workspace.settings import WorkspaceSettings
from serve_apps.gateway.config import GatewayConfig
from state.blobs import BlobStore, open_blob_store
from state.db import Database
from state.kv import KeyValueStore, open_kv

__all__ = [
    "ReadinessProbe",
    "Services",
    "WorkspaceWriterFactory",
    "WriterContext",
    "local_workspace_writer",
]

# An extra readiness check (e.g. "Ray answers"), raising when the part is not ready.
ReadinessProbe = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class WriterContext:
    """What a writer factory may build on; ``stack`` closes what it opens at shutdown."""

    config: GatewayConfig
    db: Database
    blobs: BlobStore
    stack: AsyncExitStack


# Builds the replica's WorkspaceWriter: in-process sessions by default, Ray-hosted ones when the
# Serve shell injects its own factory.
WorkspaceWriterFactory = Callable[[WriterContext], Awaitable[WorkspaceWriter]]


async def local_workspace_writer(context: WriterContext) -> WorkspaceWriter:
    """Sessions hosted in this process (tests, bare uvicorn): one host core on the exit stack."""
    from actors.workspace.host import WorkspaceHostCore
    from actors.workspace.local import LocalWorkspaceWriter

    host = await context.stack.enter_async_context(
        WorkspaceHostCore(
            "local",
            db=context.db,
            blobs=context.blobs,
            settings=context.config.workspace,
            purger=True,
        )
    )
    return LocalWorkspaceWriter(host)


@dataclass
class Services:
    db: Database
    blobs: BlobStore
    kv: KeyValueStore
    accounts: AccountService
    catalog: WorkspaceCatalog
    reader: WorkspaceReader
    writer: WorkspaceWriter
    workspace_settings: WorkspaceSettings
    redis_configured: bool
    probes: dict[str, ReadinessProbe]

    @classmethod
    async def open(
        cls,
        config: GatewayConfig,
        stack: AsyncExitStack,
        *,
        probes: dict[str, ReadinessProbe] | None = None,
        writer_factory: WorkspaceWriterFactory | None = None,
    ) -> Services:
        """Open every collaborator; ``stack`` closes them in reverse order."""
        db = Database.from_settings(config.db)
        stack.push_async_callback(db.close)
        blobs = open_blob_store(config.blob)
        stack.push_async_callback(blobs.close)
        kv = open_kv(config.redis)
        stack.push_async_callback(kv.close)
        factory = writer_factory or local_workspace_writer
        writer = await factory(WriterContext(config=config, db=db, blobs=blobs, stack=stack))
        return cls(
            db=db,
            blobs=blobs,
            kv=kv,
            accounts=AccountService(db, config.auth),
            catalog=WorkspaceCatalog(db),
            reader=WorkspaceReader(db, blobs),
            writer=writer,
            workspace_settings=config.workspace,
            redis_configured=config.redis.url is not None,
            probes=dict(probes or {}),
        )
