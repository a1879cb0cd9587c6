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
from serve_apps.llm_router.ports import LLMClient
from serve_apps.llm_router.provider_keys import KeyCipher, ProviderKeyStore
from state.blobs import BlobStore, open_blob_store
from state.db import Database
from state.kv import KeyValueStore, open_kv

__all__ = [
    "LLMClientFactory",
    "ReadinessProbe",
    "Services",
    "WorkspaceWriterFactory",
    "WriterContext",
    "local_llm_client",
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


# Builds the replica's LLMClient, or None when no model is configured (the /v1 routes answer
# 503): an in-process router by default, the router deployment's handle under Serve.
LLMClientFactory = Callable[[WriterContext], Awaitable[LLMClient | None]]


async def local_llm_client(context: WriterContext) -> LLMClient | None:
    """An in-process ``LLMRouter`` (tests, bare uvicorn), or None when no model is configured."""
    from serve_apps.llm_router.router import open_llm_router

    if not context.config.llm.configured:
        return None
    return open_llm_router(context.config.llm, db=context.db)


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
    llm: LLMClient | None = None
    provider_keys: ProviderKeyStore | None = None

    @classmethod
    async def open(
        cls,
        config: GatewayConfig,
        stack: AsyncExitStack,
        *,
        probes: dict[str, ReadinessProbe] | None = None,
        writer_factory: WorkspaceWriterFactory | None = None,
        llm_factory: LLMClientFactory | None = None,
    ) -> Services:
        """Open every collaborator; ``stack`` closes them in reverse order."""
        db = Database.from_settings(config.db)
        stack.push_async_callback(db.close)
        blobs = open_blob_store(config.blob)
        stack.push_async_callback(blobs.close)
        kv = open_kv(config.redis)
        stack.push_async_callback(kv.close)
        factory = writer_factory or local_workspace_writer
        context = WriterContext(config=config, db=db, blobs=blobs, stack=stack)
        writer = await factory(context)
        llm = await (llm_factory or local_llm_client)(context)
        encryption_key = config.llm.key_encryption_key
        provider_keys = (
            ProviderKeyStore(db, KeyCipher(encryption_key)) if encryption_key is not None else None
        )
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
            llm=llm,
            provider_keys=provider_keys,
        )
