"""The long-lived collaborators of a gateway replica, opened at startup and closed at shutdown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from accounts.service import AccountService
from actors.agent.api import AgentClient
from actors.agent.settings import AgentSettings
from actors.sandbox_pool.lease import SandboxLeaser
from actors.workspace.api import WorkspaceWriter
from actors.workspace.catalog import WorkspaceCatalog
from actors.workspace.collab_port import LiveCollab
from actors.workspace.reader import WorkspaceReader
from actors.workspace.realtime import Realtime
from actors.workspace.settings import WorkspaceSettings
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.realtime_hub import RealtimeHub
from serve_apps.gateway.role_cache import RoleCache
from serve_apps.gateway.security import SecurityServices
from serve_apps.llm_router.ports import LLMClient
from serve_apps.llm_router.provider_keys import ProviderKeyStore, open_provider_key_store
from state.blobs import BlobStore, open_blob_store
from state.db import Database
from state.kv import KeyValueStore, open_kv

__all__ = [
    "AgentClientFactory",
    "LLMClientFactory",
    "ReadinessProbe",
    "Services",
    "WorkspaceWriterFactory",
    "WriterContext",
    "local_agent_client",
    "local_llm_client",
    "local_sandbox_pool",
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
    # Where the replica's live-document and workspace events go (local sessions publish here).
    realtime: Realtime | None = None


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
            sandboxes=await local_sandbox_pool(context),
            realtime=context.realtime,
        )
    )
    return LocalWorkspaceWriter(host)


async def local_sandbox_pool(context: WriterContext) -> SandboxLeaser | None:
    """A sandbox pool in this process, or a stand-in saying why sandboxes cannot run here.

    Entered on the stack before the host, so it closes after the sessions released leases."""
    from actors.sandbox_pool import SandboxPoolCore, UnavailableLeaser
    from actors.sandbox_pool.lease import unavailable_detail
    from sandbox import SandboxUnavailable, open_backend

    settings = context.config.sandbox
    if settings is None:
        return None
    try:
        backend = open_backend(settings)
    except SandboxUnavailable as exc:
        return UnavailableLeaser(exc.backend, unavailable_detail(exc))
    await context.stack.enter_async_context(backend)
    return await context.stack.enter_async_context(SandboxPoolCore(backend, settings))


# Builds the replica's LLMClient, or None when no model is configured (the /v1 routes answer
# 503): an in-process router by default, the router deployment's handle under Serve.
LLMClientFactory = Callable[[WriterContext], Awaitable[LLMClient | None]]


async def local_llm_client(context: WriterContext) -> LLMClient | None:
    """An in-process ``LLMRouter`` (tests, bare uvicorn), or None when no model is configured."""
    from serve_apps.llm_router.router import open_llm_router

    if not context.config.llm.configured:
        return None
    return open_llm_router(context.config.llm, db=context.db)


# Builds the replica's AgentClient from its writer and LLM client, or None when no model is
# configured (the agent routes answer 503): runs hosted in this process by default, in the
# AgentHost actors under Serve.
AgentClientFactory = Callable[
    [WriterContext, WorkspaceWriter, LLMClient | None], Awaitable[AgentClient | None]
]


async def local_agent_client(
    context: WriterContext, writer: WorkspaceWriter, llm: LLMClient | None
) -> AgentClient | None:
    """Runs hosted in this process (tests, bare uvicorn): one host core on the exit stack,
    closed before the writer it uses."""
    from actors.agent.host import AgentHostCore
    from actors.agent.local import LocalAgentClient
    from actors.agent.sink import RealtimeRunSink
    from actors.agent.store import RunStore

    if llm is None:
        return None
    host = await context.stack.enter_async_context(
        AgentHostCore(
            "local",
            store=RunStore(context.db),
            llm=llm,
            writer=writer,
            reader=WorkspaceReader(context.db, context.blobs),
            settings=context.config.agent,
            sink=RealtimeRunSink(context.realtime) if context.realtime is not None else None,
        )
    )
    return LocalAgentClient(host)


@dataclass
class Services:
    db: Database
    blobs: BlobStore
    kv: KeyValueStore
    accounts: AccountService
    security: SecurityServices
    catalog: WorkspaceCatalog
    # Members' roles for authorizing workspace requests (see role_cache.py for freshness).
    roles: RoleCache
    reader: WorkspaceReader
    writer: WorkspaceWriter
    workspace_settings: WorkspaceSettings
    redis_configured: bool
    probes: dict[str, ReadinessProbe]
    llm: LLMClient | None = None
    provider_keys: ProviderKeyStore | None = None
    realtime: RealtimeHub | None = None
    collab: LiveCollab | None = None
    agents: AgentClient | None = None
    agent_settings: AgentSettings = field(default_factory=AgentSettings)

    @classmethod
    async def open(
        cls,
        config: GatewayConfig,
        stack: AsyncExitStack,
        *,
        probes: dict[str, ReadinessProbe] | None = None,
        writer_factory: WorkspaceWriterFactory | None = None,
        llm_factory: LLMClientFactory | None = None,
        agent_factory: AgentClientFactory | None = None,
        realtime_kv_factory: Callable[[], KeyValueStore] | None = None,
    ) -> Services:
        """Open every collaborator; ``stack`` closes them in reverse order.

        ``realtime_kv_factory``: the transport of the realtime channel when no Redis is set and
        the workspace hosts live in other processes (on Ray: the cluster's kv-bus actor)."""
        db = Database.from_settings(config.db)
        stack.push_async_callback(db.close)
        blobs = open_blob_store(config.blob)
        stack.push_async_callback(blobs.close)
        kv = open_kv(config.redis)
        stack.push_async_callback(kv.close)
        realtime_kv = kv
        if config.redis.url is None and realtime_kv_factory is not None:
            realtime_kv = realtime_kv_factory()
            stack.push_async_callback(realtime_kv.close)
        realtime = await stack.enter_async_context(RealtimeHub(realtime_kv))
        factory = writer_factory or local_workspace_writer
        context = WriterContext(config=config, db=db, blobs=blobs, stack=stack, realtime=realtime)
        writer = await factory(context)
        llm = await (llm_factory or local_llm_client)(context)
        agents = await (agent_factory or local_agent_client)(context, writer, llm)
        provider_keys = open_provider_key_store(db, config.llm)
        security = SecurityServices.open(config, db, kv)
        catalog = WorkspaceCatalog(db)
        return cls(
            db=db,
            blobs=blobs,
            kv=kv,
            accounts=security.accounts,
            security=security,
            catalog=catalog,
            roles=RoleCache(catalog, ttl_s=config.workspace.role_cache_ttl_s),
            reader=WorkspaceReader(db, blobs),
            writer=writer,
            workspace_settings=config.workspace,
            redis_configured=config.redis.url is not None,
            probes=dict(probes or {}),
            llm=llm,
            provider_keys=provider_keys,
            realtime=realtime,
            collab=writer if isinstance(writer, LiveCollab) else None,
            agents=agents,
            agent_settings=config.agent,
        )
