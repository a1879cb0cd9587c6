"""The gateway as a Ray Serve deployment: a thin shell over ``build_app``."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import ray
from fastapi import FastAPI
from ray import serve
from ray.serve import Deployment

from actors.agent.api import AgentClient
from actors.kv_bus import RayKeyValueStore
from actors.workspace.actor import HostConfig
from actors.workspace.api import WorkspaceWriter
from actors.workspace.ray_writer import RayWorkspaceWriter
from serve_apps.gateway.agent_hosts import ray_agent_client, serve_llm
from serve_apps.gateway.app import build_app
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.services import WriterContext
from serve_apps.llm_router.client import ServeLLMClient
from serve_apps.llm_router.ports import LLMClient
from state.kv import KeyValueStore

__all__ = ["Gateway", "GatewayReplica"]

RAY_PROBE_TIMEOUT_S = 2.0


async def ray_ready() -> None:
    """Raise unless this replica can reach the cluster's control plane (GCS)."""
    if not ray.is_initialized():
        raise RuntimeError("not connected to Ray")
    resources = await asyncio.wait_for(
        asyncio.to_thread(ray.cluster_resources), RAY_PROBE_TIMEOUT_S
    )
    if not resources:
        raise RuntimeError("the cluster reports no resources")


class GatewayReplica:
    """One gateway replica. ``setup_process`` (e.g. logging) runs first in the replica process."""

    def __init__(
        self,
        config: GatewayConfig,
        setup_process: Callable[[], None] | None = None,
        *,
        namespace: str = "vibecode",
        llm: Any = None,
    ) -> None:
        """``llm``: a handle to ``LLMRouterDeployment`` (bound by the composition root), or
        None when no model is configured (the /v1 routes then answer 503)."""
        if setup_process is not None:
            setup_process()
        self._config = config
        self._setup_process = setup_process
        self._namespace = namespace
        self._llm = llm

    @staticmethod
    def _host_config(context: WriterContext) -> HostConfig:
        return HostConfig(
            db=context.config.db,
            blob=context.config.blob,
            workspace=context.config.workspace,
            sandbox=context.config.sandbox,
            # Hosts publish live edits, file events and agent events to every replica (Redis).
            redis=context.config.redis,
        )

    async def _ray_writer(self, context: WriterContext) -> WorkspaceWriter:
        """Workspace sessions live in the named WorkspaceHost actors, shared by all replicas."""
        return RayWorkspaceWriter(
            self._host_config(context), namespace=self._namespace, setup_process=self._setup_process
        )

    async def _ray_agents(
        self, context: WriterContext, _writer: WorkspaceWriter, llm: LLMClient | None
    ) -> AgentClient | None:
        """Agent runs live in the named AgentHost actors, which call the router deployment."""
        if llm is None:
            return None
        return ray_agent_client(
            db=context.db,
            workspace=self._host_config(context),
            agent=context.config.agent,
            llm_factory=functools.partial(serve_llm, self._llm),
            namespace=self._namespace,
            setup_process=self._setup_process,
        )

    async def _serve_llm(self, _context: WriterContext) -> LLMClient | None:
        return ServeLLMClient(self._llm) if self._llm is not None else None

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Serve adopts the caller's x-request-id (or makes one), passes it in, and echoes it.
        return build_app(
            self._config,
            probes={"ray": ray_ready},
            echo_request_id=False,
            writer_factory=self._ray_writer,
            llm_factory=self._serve_llm,
            agent_factory=self._ray_agents,
            realtime_kv_factory=self._cluster_kv,
        )

    def _cluster_kv(self) -> KeyValueStore:
        """Without Redis, the realtime channel crosses processes through the kv-bus actor."""
        return RayKeyValueStore(self._namespace)


# The replica class stays a plain class (importable and testable); this is its Serve shell.
Gateway: Deployment = serve.deployment(name="gateway", ray_actor_options={"num_cpus": 0})(
    serve.ingress()(GatewayReplica)
)
