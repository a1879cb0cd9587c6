"""The SandboxPool actor (one per node, ``sandbox-pool:<node_id>``) and its leaser client.

The pool must run on the node whose disk holds the working trees it binds, so it is pinned
with hard node affinity: if the node goes, its pool and trees go with it (the WorkspaceHost
that needs a pool finds or creates the one of its own node). Detached, restarted by Ray,
``num_cpus=0``: the sandboxes are processes it starts, not Ray workers. State is cattle: after
a restart its old sandboxes are gone (bwrap dies with its parent) and old leases raise
``LeaseExpired``; workspace files never live only in a sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import ray
import structlog
from ray.actor import ActorHandle
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
from ray.util import metrics
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.platform import platform_actor_options
from actors.sandbox_pool.core import SandboxPoolCore
from actors.sandbox_pool.lease import Lease, LeaseExpired, unavailable_detail
from sandbox import (
    ExecEvent,
    ExecRequest,
    ExecResult,
    ProcessInfo,
    ProcessLogs,
    SandboxBackend,
    SandboxError,
    SandboxSettings,
    SandboxUnavailable,
    StartRequest,
    open_backend,
)

__all__ = [
    "RaySandboxLeaser",
    "SandboxPool",
    "SandboxPoolShell",
    "pool_handle",
    "pool_name",
    "stop_pools",
]

log = structlog.get_logger("sandbox_pool.actor")
METRICS_INTERVAL_S = 5.0
POOL_MAX_CONCURRENCY = 10_000


def pool_name(node_id: str) -> str:
    return f"sandbox-pool:{node_id}"


class SandboxPoolShell:
    """The actor class: opens the backend and the pool core on its first call."""

    def __init__(
        self, settings: SandboxSettings, setup_process: Callable[[], None] | None = None
    ) -> None:
        if setup_process is not None:
            setup_process()
        self._settings = settings
        self._node_id = ray.get_runtime_context().get_node_id()
        self._core: SandboxPoolCore | None = None
        self._unavailable: SandboxUnavailable | None = None
        self._opening = asyncio.Lock()
        self._stack = contextlib.AsyncExitStack()
        self._metrics_task: asyncio.Task[None] | None = None
        tags = {"node": self._node_id[:12]}
        self._warm = metrics.Gauge(
            "vibecode_sandbox_warm", description="Warm sandboxes ready.", tag_keys=("node",)
        ).set_default_tags(tags)
        self._leased = metrics.Gauge(
            "vibecode_sandbox_leased", description="Sandboxes leased.", tag_keys=("node",)
        ).set_default_tags(tags)
        self._creates = metrics.Counter(
            "vibecode_sandbox_creates", description="Sandboxes created.", tag_keys=("node",)
        ).set_default_tags(tags)
        self._create_latency = metrics.Histogram(
            "vibecode_sandbox_create_seconds",
            description="Time to create a sandbox ready for commands.",
            boundaries=[0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
            tag_keys=("node",),
        ).set_default_tags(tags)

    async def _pool(self) -> SandboxPoolCore:
        if self._core is not None:
            return self._core
        async with self._opening:
            if self._unavailable is not None:
                raise self._unavailable
            if self._core is None:
                try:
                    backend: SandboxBackend = open_backend(self._settings)
                except SandboxUnavailable as exc:
                    self._unavailable = SandboxUnavailable(exc.backend, unavailable_detail(exc))
                    log.warning("sandbox_pool.unavailable", reason=exc.reason)
                    raise self._unavailable from exc
                await self._stack.enter_async_context(backend)
                self._core = await self._stack.enter_async_context(
                    SandboxPoolCore(backend, self._settings, on_create=self._observe_create)
                )
                self._metrics_task = asyncio.create_task(self._report_forever())
                log.info("sandbox_pool.started", node_id=self._node_id, backend=backend.name)
        return self._core

    def _observe_create(self, latency_s: float) -> None:
        self._creates.inc()
        self._create_latency.observe(latency_s)

    async def _report_forever(self) -> None:
        while self._core is not None:
            stats = self._core.stats()
            self._warm.set(stats.warm)
            self._leased.set(stats.leased)
            await asyncio.sleep(METRICS_INTERVAL_S)

    async def ping(self) -> dict[str, Any]:
        pool = await self._pool()
        stats = pool.stats()
        return {"node_id": self._node_id, "warm": stats.warm, "leased": stats.leased}

    async def stats(self) -> dict[str, int]:
        pool = await self._pool()
        return dataclasses.asdict(pool.stats())

    async def lease(self, workspace_id: str, tree_dir: Path) -> Lease:
        return await (await self._pool()).lease(workspace_id, tree_dir)

    async def release(self, lease: Lease) -> None:
        await (await self._pool()).release(lease)

    async def exec(self, lease: Lease, request: ExecRequest) -> ExecResult:
        return await (await self._pool()).exec(lease, request)

    async def exec_stream(self, lease: Lease, request: ExecRequest) -> AsyncIterator[ExecEvent]:
        async for event in (await self._pool()).exec_stream(lease, request):
            yield event

    async def start_process(self, lease: Lease, request: StartRequest) -> ProcessInfo:
        return await (await self._pool()).start_process(lease, request)

    async def list_processes(self, lease: Lease) -> list[ProcessInfo]:
        return await (await self._pool()).list_processes(lease)

    async def read_logs(self, lease: Lease, process_id: str, offset: int = 0) -> ProcessLogs:
        return await (await self._pool()).read_logs(lease, process_id, offset)

    async def follow_process(
        self, lease: Lease, process_id: str, offset: int = 0
    ) -> AsyncIterator[bytes]:
        async for data in (await self._pool()).follow_process(lease, process_id, offset):
            yield data

    async def write_stdin(self, lease: Lease, process_id: str, data: bytes) -> None:
        await (await self._pool()).write_stdin(lease, process_id, data)

    async def resize_terminal(self, lease: Lease, process_id: str, *, cols: int, rows: int) -> None:
        await (await self._pool()).resize_terminal(lease, process_id, cols=cols, rows=rows)

    async def kill_process(self, lease: Lease, process_id: str) -> bool:
        return await (await self._pool()).kill_process(lease, process_id)


SandboxPool = ray.remote(SandboxPoolShell)


def pool_handle(
    node_id: str,
    settings: SandboxSettings,
    *,
    namespace: str | None = None,
    setup_process: Callable[[], None] | None = None,
) -> ActorHandle[SandboxPoolShell]:
    """The pool actor of ``node_id``, created there on first use."""
    handle: ActorHandle[SandboxPoolShell] = SandboxPool.options(  # type: ignore[assignment]
        **platform_actor_options(
            pool_name(node_id),
            namespace=namespace,
            max_concurrency=POOL_MAX_CONCURRENCY,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        )
    ).remote(settings, setup_process)
    return handle


def stop_pools(namespace: str) -> int:
    """Kill every node's pool actor (its sandboxes die with it); returns how many."""
    stopped = 0
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        try:
            handle = ray.get_actor(pool_name(node["NodeID"]), namespace=namespace)
        except ValueError:
            continue
        ray.kill(handle)
        stopped += 1
    return stopped


def _unwrap(exc: RayTaskError) -> BaseException:
    cause = exc.cause
    return cause if isinstance(cause, SandboxError) else exc


class RaySandboxLeaser:
    """``SandboxLeaser`` through the node's pool actor. A pool that died loses its leases:
    calls then raise ``LeaseExpired`` (the command did not run, or its outcome is unknown)."""

    def __init__(self, handle: ActorHandle[SandboxPoolShell], settings: SandboxSettings) -> None:
        self._handle = handle
        self.idle_timeout_s = settings.idle_timeout_s

    async def _call(self, method: str, lease: Lease | None, *args: Any, **kwargs: Any) -> Any:
        try:
            return await getattr(self._handle, method).remote(*args, **kwargs)
        except RayTaskError as exc:
            raise _unwrap(exc) from None
        except (RayActorError, ActorUnavailableError) as exc:
            if lease is None:
                raise SandboxUnavailable("pool", "the node's sandbox pool is restarting") from exc
            raise LeaseExpired(lease.lease_id) from exc

    async def _stream(self, method: str, lease: Lease, *args: Any) -> AsyncIterator[Any]:
        try:
            refs = getattr(self._handle, method).remote(lease, *args)
            async for ref in refs:
                yield await ref
        except RayTaskError as exc:
            raise _unwrap(exc) from None
        except (RayActorError, ActorUnavailableError) as exc:
            raise LeaseExpired(lease.lease_id) from exc

    async def lease(self, workspace_id: str, tree_dir: Path) -> Lease:
        result: Lease = await self._call("lease", None, workspace_id, tree_dir)
        return result

    async def release(self, lease: Lease) -> None:
        with contextlib.suppress(LeaseExpired):
            await self._call("release", lease, lease)

    async def exec(self, lease: Lease, request: ExecRequest) -> ExecResult:
        result: ExecResult = await self._call("exec", lease, lease, request)
        return result

    async def exec_stream(self, lease: Lease, request: ExecRequest) -> AsyncIterator[ExecEvent]:
        async for event in self._stream("exec_stream", lease, request):
            yield event

    async def start_process(self, lease: Lease, request: StartRequest) -> ProcessInfo:
        result: ProcessInfo = await self._call("start_process", lease, lease, request)
        return result

    async def list_processes(self, lease: Lease) -> list[ProcessInfo]:
        result: list[ProcessInfo] = await self._call("list_processes", lease, lease)
        return result

    async def read_logs(self, lease: Lease, process_id: str, offset: int = 0) -> ProcessLogs:
        result: ProcessLogs = await self._call("read_logs", lease, lease, process_id, offset)
        return result

    async def follow_process(
        self, lease: Lease, process_id: str, offset: int = 0
    ) -> AsyncIterator[bytes]:
        async for data in self._stream("follow_process", lease, process_id, offset):
            yield data

    async def write_stdin(self, lease: Lease, process_id: str, data: bytes) -> None:
        await self._call("write_stdin", lease, lease, process_id, data)

    async def resize_terminal(self, lease: Lease, process_id: str, *, cols: int, rows: int) -> None:
        await self._call("resize_terminal", lease, lease, process_id, cols=cols, rows=rows)

    async def kill_process(self, lease: Lease, process_id: str) -> bool:
        result: bool = await self._call("kill_process", lease, lease, process_id)
        return result
