"""The AgentHost actor (a thin Ray shell over ``AgentHostCore``) and ``RayAgentClient``.

Hosts are named ``agent-host:<n>``, detached and restarted by Ray when they die
(``max_restarts=-1``); each holds many runs. A (re)started host boots itself and resumes the
active runs recorded with its name, from their event logs. The client places a new run on the
least-loaded host (active runs per host, from the database; ties rotate) and records the host
on the run row before starting it there, so a run is never without a host that will resume it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable
from typing import Any

import ray
import structlog
from pydantic import BaseModel, ConfigDict
from ray.actor import ActorHandle
from ray.exceptions import ActorUnavailableError, RayActorError

from actors.agent.api import RunInfo, RunRequest
from actors.agent.host import AgentHostCore, run_limits
from actors.agent.settings import AgentSettings
from actors.agent.sink import RealtimeRunSink, RunEventSink
from actors.agent.store import RunStore
from actors.platform import platform_actor_options
from actors.workspace.actor import HostConfig
from actors.workspace.ray_writer import RayWorkspaceWriter
from actors.workspace.reader import WorkspaceReader
from serve_apps.llm_router.ports import LLMClient
from state.blobs import open_blob_store
from state.db import Database

__all__ = ["AgentHost", "AgentHostConfig", "AgentHostShell", "RayAgentClient", "agent_host_name"]

log = structlog.get_logger("agent.actor")
HOST_PREFIX = "agent-host"
HOST_MAX_CONCURRENCY = 10_000
CALL_TIMEOUT_S = 10.0


def agent_host_name(index: int) -> str:
    return f"{HOST_PREFIX}:{index}"


class AgentHostConfig(BaseModel):
    """What a host needs: durable state, the workspaces' hosts, the agent settings, and
    ``llm_factory`` (picklable, e.g. a ``functools.partial``) that builds its ``LLMClient``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    workspace: HostConfig
    agent: AgentSettings
    llm_factory: Callable[[Database], LLMClient]


class AgentHostShell:
    """The actor class. Its core opens on ``boot``, which the constructor schedules, so a
    restarted host resumes its runs without waiting for a caller."""

    def __init__(
        self,
        name: str,
        config: AgentHostConfig,
        namespace: str,
        setup_process: Callable[[], None] | None = None,
    ) -> None:
        if setup_process is not None:
            setup_process()
        self._name = name
        self._config = config
        self._namespace = namespace
        self._setup_process = setup_process
        self._core: AgentHostCore | None = None
        self._opening = asyncio.Lock()
        # A call to itself, queued behind the constructor: boot (and resume) as soon as alive.
        # Retried: while Ray restarts this actor, a call made from its constructor can fail
        # with "the actor is restarting", and then nothing would resume its runs.
        current = ray.get_runtime_context().current_actor
        current.boot.options(max_task_retries=-1).remote()

    def _sink(self) -> RunEventSink | None:
        """Run events reach Socket.IO rooms through Redis pub/sub when Redis is configured,
        else through the cluster's kv-bus actor."""
        from actors.kv_bus import open_cluster_kv
        from actors.workspace.realtime import KvRealtime

        kv = open_cluster_kv(self._config.workspace.redis, namespace=self._namespace)
        return RealtimeRunSink(KvRealtime(kv, origin=self._name))

    async def _host(self) -> AgentHostCore:
        if self._core is not None:
            return self._core
        async with self._opening:
            if self._core is None:
                config = self._config.workspace
                db = Database.from_settings(config.db)
                blobs = open_blob_store(config.blob)
                writer = RayWorkspaceWriter(
                    config, namespace=self._namespace, setup_process=self._setup_process
                )
                core = AgentHostCore(
                    self._name,
                    store=RunStore(db),
                    llm=self._config.llm_factory(db),
                    writer=writer,
                    reader=WorkspaceReader(db, blobs),
                    settings=self._config.agent,
                    sink=self._sink(),
                )
                self._core = core
                resumed = await core.start()
                log.info("agent_host.started", host=self._name, resumed=len(resumed))
        return self._core

    async def boot(self) -> None:
        await self._host()

    async def start_run(self, run_id: str) -> None:
        await (await self._host()).start_run(run_id)

    async def cancel(self, run_id: str) -> bool:
        return await (await self._host()).cancel(run_id)

    async def ping(self) -> dict[str, Any]:
        host = await self._host()
        return {"host": self._name, "pid": os.getpid(), "runs": host.load()}


# The Ray shell. Options (name, namespace, detached lifetime, restarts) are set where it is created.
AgentHost = ray.remote(AgentHostShell)


class RayAgentClient:
    """Places runs on ``AgentHost`` actors (creating them on first use) and cancels them."""

    def __init__(
        self,
        config: AgentHostConfig,
        *,
        store: RunStore,
        namespace: str,
        setup_process: Callable[[], None] | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._namespace = namespace
        self._setup_process = setup_process
        self._names = [agent_host_name(i) for i in range(config.agent.hosts)]
        self._rotation = itertools.cycle(range(len(self._names)))
        self._handles: dict[str, ActorHandle[AgentHostShell]] = {}

    def handle(self, name: str) -> ActorHandle[AgentHostShell]:
        cached = self._handles.get(name)
        if cached is not None:
            return cached
        handle: ActorHandle[AgentHostShell] = AgentHost.options(  # type: ignore[assignment]
            **platform_actor_options(
                name, namespace=self._namespace, max_concurrency=HOST_MAX_CONCURRENCY
            )
        ).remote(name, self._config, self._namespace, self._setup_process)
        self._handles[name] = handle
        return handle

    async def _least_loaded(self) -> str:
        load = await self._store.load_by_host()
        start = next(self._rotation)
        order = self._names[start:] + self._names[:start]
        return min(order, key=lambda name: load.get(name, 0))

    async def _tell(self, name: str, method: str, run_id: str) -> Any:
        """Call a host; a host that is down is not an error (it resumes its runs on restart)."""
        try:
            ref = getattr(self.handle(name), method).remote(run_id)
            return await asyncio.wait_for(ref, CALL_TIMEOUT_S)
        except (RayActorError, ActorUnavailableError, TimeoutError) as exc:
            self._handles.pop(name, None)
            log.warning(
                "agent_host.unreachable", host=name, method=method, error=type(exc).__name__
            )
            return None

    async def start(self, request: RunRequest) -> RunInfo:
        # The host is recorded with the run, so a run is never without a host to resume it.
        name = await self._least_loaded()
        limits = run_limits(request, self._config.agent)
        run = await self._store.create(request, limits=limits, host=name)
        await self._tell(name, "start_run", run.run_id)
        return await self._store.get(run.run_id)

    async def cancel(self, run_id: str) -> RunInfo:
        if await self._store.request_cancel(run_id):
            run = await self._store.get(run_id)
            if run.host is not None:
                await self._tell(run.host, "cancel", run_id)
        return await self._store.get(run_id)

    async def close(self) -> None:
        return None

    def kill_hosts(self) -> None:
        """Kill every host actor (tests): runs left active resume when a host starts again."""
        for name in self._names:
            try:
                ray.kill(ray.get_actor(name, namespace=self._namespace), no_restart=True)
            except ValueError:
                continue
