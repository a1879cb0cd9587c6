"""SandboxPoolCore: the warm sandboxes of one node and the leases that bind them to workspaces.

The pool keeps ``pool_size`` sandboxes created without a workspace, so a lease costs an
``attach_workspace`` (a chown walk and a bind mount), not a sandbox start. Three separate
settings bound a sandbox's life: ``idle_timeout_s`` (warm sandboxes beyond the minimum that
sat unused this long are destroyed; a held lease without calls for twice as long is ended as
a backstop for owners that died), ``max_lifetime_s`` (older sandboxes are replaced instead of
reused) and the per-command timeout (``default_limits.exec_timeout_s`` unless the request asks
for one, capped at ``max_exec_timeout_s``). Creates run at most ``max_concurrent_creates`` at a
time. A sandbox that fails a health check, a reset or a command is destroyed and replaced.

It is an async context manager owning its maintenance task and creates; the caller owns the
backend: ``async with backend, SandboxPoolCore(backend, settings) as pool: ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog

from actors.sandbox_pool.lease import Lease, LeaseExpired
from sandbox import (
    ExecEvent,
    ExecRequest,
    ExecResult,
    ProcessInfo,
    ProcessLogs,
    SandboxBackend,
    SandboxCrashed,
    SandboxError,
    SandboxNotFound,
    SandboxSettings,
    SandboxSpec,
    StartRequest,
)

__all__ = ["PoolStats", "SandboxPoolCore"]

log = structlog.get_logger("actors.sandbox_pool")

CREATE_BACKOFF_S = 1.0
# A lease nobody calls is ended after this many idle timeouts (the owner normally ends it first).
ORPHAN_LEASE_FACTOR = 2.0


@dataclass(slots=True)
class _Sandbox:
    sandbox_id: str
    created_at: float
    idle_since: float


@dataclass(slots=True)
class _Leased:
    lease: Lease
    sandbox: _Sandbox
    last_used: float
    in_flight: int = 0


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Counters the actor shell exports as metrics."""

    warm: int
    leased: int
    creating: int
    created: int
    destroyed: int
    create_failures: int
    leases: int


@dataclass(slots=True)
class _Counters:
    created: int = 0
    destroyed: int = 0
    create_failures: int = 0
    leases: int = 0
    creating: int = 0
    latencies_s: list[float] = field(default_factory=list)


class SandboxPoolCore:
    def __init__(
        self,
        backend: SandboxBackend,
        settings: SandboxSettings,
        *,
        on_create: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.idle_timeout_s = settings.idle_timeout_s
        self._on_create = on_create
        self._clock = clock
        self._warm: list[_Sandbox] = []
        self._leases: dict[str, _Leased] = {}
        self._by_workspace: dict[str, str] = {}
        self._workspace_locks: dict[str, asyncio.Lock] = {}
        self._create_slots = asyncio.Semaphore(settings.max_concurrent_creates)
        self._counters = _Counters()
        self._backoff_until = 0.0
        self._wake = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._maintainer: asyncio.Task[None] | None = None
        self._closing = False

    # --- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._maintainer = self._group.create_task(self._maintain_forever())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        self._wake.set()
        # Only the maintenance loop is cancelled (it also checks ``_closing``: on 3.11 a cancel
        # can be lost inside wait_for). Creates in flight finish and destroy what they made:
        # a create cancelled half-way can leave a launched sandbox nobody waits for.
        if self._maintainer is not None:
            self._maintainer.cancel()
        try:
            if self._group is not None:
                await self._group.__aexit__(exc_type, exc, tb)
        finally:
            self._group = None
            doomed = [s.sandbox_id for s in self._warm]
            doomed += [leased.sandbox.sandbox_id for leased in self._leases.values()]
            self._warm.clear()
            self._leases.clear()
            self._by_workspace.clear()
            for sandbox_id in doomed:
                await self._destroy(sandbox_id)

    def _spawn(self, coro: Any) -> None:
        if self._group is None or self._closing:
            coro.close()
            return
        task = self._group.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stats(self) -> PoolStats:
        c = self._counters
        return PoolStats(
            warm=len(self._warm),
            leased=len(self._leases),
            creating=c.creating,
            created=c.created,
            destroyed=c.destroyed,
            create_failures=c.create_failures,
            leases=c.leases,
        )

    def take_create_latencies(self) -> list[float]:
        """Create latencies (seconds) since the last call, for a histogram."""
        taken, self._counters.latencies_s = self._counters.latencies_s, []
        return taken

    # --- leases ---------------------------------------------------------------------------------

    async def lease(self, workspace_id: str, tree_dir: Path) -> Lease:
        lock = self._workspace_locks.setdefault(workspace_id, asyncio.Lock())
        try:
            async with lock:
                return await self._lease(workspace_id, tree_dir)
        finally:
            if self._workspace_locks.get(workspace_id) is lock and not lock.locked():
                del self._workspace_locks[workspace_id]

    async def _lease(self, workspace_id: str, tree_dir: Path) -> Lease:
        current = self._by_workspace.get(workspace_id)
        if current is not None:
            leased = self._leases[current]
            leased.last_used = self._clock()
            return leased.lease
        for attempt in range(2):
            sandbox = self._warm.pop() if self._warm else await self._create()
            try:
                await self.backend.attach_workspace(sandbox.sandbox_id, tree_dir)
            except (SandboxError, OSError) as exc:
                log.warning("sandbox.attach_failed", sandbox_id=sandbox.sandbox_id, error=str(exc))
                await self._destroy(sandbox.sandbox_id)
                if attempt == 1:
                    raise
                continue
            break
        self._wake.set()  # Refill behind the one just taken.
        lease = Lease("lease-" + uuid.uuid4().hex[:16], sandbox.sandbox_id, workspace_id)
        self._leases[lease.lease_id] = _Leased(lease, sandbox, self._clock())
        self._by_workspace[workspace_id] = lease.lease_id
        self._counters.leases += 1
        log.info("sandbox.leased", sandbox_id=sandbox.sandbox_id, workspace_id=workspace_id)
        return lease

    async def release(self, lease: Lease) -> None:
        """End ``lease``: kill its processes, wipe the sandbox, and pool it again (or replace
        it when it is broken or past its lifetime). No-op for a lease that already ended."""
        leased = self._forget(lease.lease_id)
        if leased is not None:
            await self._recycle(leased.sandbox)

    def _forget(self, lease_id: str) -> _Leased | None:
        leased = self._leases.pop(lease_id, None)
        if leased is not None and self._by_workspace.get(leased.lease.workspace_id) == lease_id:
            del self._by_workspace[leased.lease.workspace_id]
        return leased

    async def _recycle(self, sandbox: _Sandbox) -> None:
        if self._clock() - sandbox.created_at >= self.settings.max_lifetime_s or self._closing:
            await self._destroy(sandbox.sandbox_id)
            self._wake.set()
            return
        try:
            await self.backend.reset(sandbox.sandbox_id)
            healthy = (await self.backend.health(sandbox.sandbox_id)).alive
        except (SandboxError, OSError) as exc:
            log.warning("sandbox.reset_failed", sandbox_id=sandbox.sandbox_id, error=str(exc))
            healthy = False
        if healthy:
            sandbox.idle_since = self._clock()
            self._warm.append(sandbox)
        else:
            await self._destroy(sandbox.sandbox_id)
        self._wake.set()

    @contextlib.asynccontextmanager
    async def _using(self, lease: Lease) -> AsyncIterator[str]:
        leased = self._leases.get(lease.lease_id)
        if leased is None:
            raise LeaseExpired(lease.lease_id)
        leased.in_flight += 1
        try:
            yield leased.sandbox.sandbox_id
        except (SandboxCrashed, SandboxNotFound):
            if self._forget(lease.lease_id) is not None:
                await self._destroy(leased.sandbox.sandbox_id)
                self._wake.set()
            raise
        finally:
            leased.in_flight -= 1
            leased.last_used = self._clock()

    # --- commands and processes -----------------------------------------------------------------

    def bounded(self, request: ExecRequest) -> ExecRequest:
        """``request`` with its timeout made explicit: the default, or the cap if above it."""
        asked = request.timeout_s or self.settings.default_limits.exec_timeout_s
        return request.model_copy(
            update={"timeout_s": min(asked, self.settings.max_exec_timeout_s)}
        )

    async def exec(self, lease: Lease, request: ExecRequest) -> ExecResult:
        async with self._using(lease) as sandbox_id:
            return await self.backend.exec(sandbox_id, self.bounded(request))

    async def exec_stream(self, lease: Lease, request: ExecRequest) -> AsyncIterator[ExecEvent]:
        async with self._using(lease) as sandbox_id:
            async for event in self.backend.exec_stream(sandbox_id, self.bounded(request)):
                yield event

    async def start_process(self, lease: Lease, request: StartRequest) -> ProcessInfo:
        async with self._using(lease) as sandbox_id:
            return await self.backend.start_process(sandbox_id, request)

    async def list_processes(self, lease: Lease) -> list[ProcessInfo]:
        async with self._using(lease) as sandbox_id:
            return await self.backend.list_processes(sandbox_id)

    async def read_logs(self, lease: Lease, process_id: str, offset: int = 0) -> ProcessLogs:
        async with self._using(lease) as sandbox_id:
            return await self.backend.read_logs(sandbox_id, process_id, offset)

    async def follow_process(
        self, lease: Lease, process_id: str, offset: int = 0
    ) -> AsyncIterator[bytes]:
        async with self._using(lease) as sandbox_id:
            async for data in self.backend.follow_process(sandbox_id, process_id, offset):
                yield data

    async def write_stdin(self, lease: Lease, process_id: str, data: bytes) -> None:
        async with self._using(lease) as sandbox_id:
            await self.backend.write_stdin(sandbox_id, process_id, data)

    async def resize_terminal(self, lease: Lease, process_id: str, *, cols: int, rows: int) -> None:
        async with self._using(lease) as sandbox_id:
            await self.backend.resize_terminal(sandbox_id, process_id, cols=cols, rows=rows)

    async def kill_process(self, lease: Lease, process_id: str) -> bool:
        async with self._using(lease) as sandbox_id:
            return await self.backend.kill_process(sandbox_id, process_id)

    # --- warm sandboxes ---------------------------------------------------------------------------

    async def _create(self) -> _Sandbox:
        async with self._create_slots:
            started = self._clock()
            info = await self.backend.create(
                SandboxSpec(limits=self.settings.default_limits, labels={"pool": "warm"})
            )
            latency_s = self._clock() - started
        self._counters.created += 1
        self._counters.latencies_s.append(latency_s)
        if self._on_create is not None:
            self._on_create(latency_s)
        now = self._clock()
        return _Sandbox(info.sandbox_id, now, now)

    async def _create_warm(self) -> None:
        try:
            sandbox = await self._create()
        except SandboxError as exc:
            self._counters.create_failures += 1
            self._backoff_until = self._clock() + CREATE_BACKOFF_S
            log.warning("sandbox.create_failed", error=str(exc))
            return
        finally:
            self._counters.creating -= 1
        if self._closing:
            await self._destroy(sandbox.sandbox_id)
        else:
            self._warm.append(sandbox)

    async def _destroy(self, sandbox_id: str) -> None:
        try:
            if await self.backend.destroy(sandbox_id):
                self._counters.destroyed += 1
        except (SandboxError, OSError) as exc:
            log.warning("sandbox.destroy_failed", sandbox_id=sandbox_id, error=str(exc))

    def _refill(self) -> None:
        if self._clock() < self._backoff_until:
            return
        missing = self.settings.pool_size - len(self._warm) - self._counters.creating
        for _ in range(max(0, missing)):
            self._counters.creating += 1
            self._spawn(self._create_warm())

    async def maintain(self) -> None:
        """One round: recycle old and idle warm sandboxes, drop broken ones, end orphaned
        leases, and start creates up to ``pool_size``."""
        now = self._clock()
        for sandbox in list(self._warm):
            if now - sandbox.created_at >= self.settings.max_lifetime_s:
                await self._evict(sandbox, reason="lifetime")
        surplus = len(self._warm) - self.settings.pool_size
        if surplus > 0:
            oldest_idle = sorted(self._warm, key=lambda s: s.idle_since)[:surplus]
            for sandbox in oldest_idle:
                if now - sandbox.idle_since >= self.settings.idle_timeout_s:
                    await self._evict(sandbox, reason="idle")
        for sandbox in list(self._warm):
            try:
                alive = (await self.backend.health(sandbox.sandbox_id)).alive
            except SandboxNotFound:
                alive = False
            if not alive and sandbox in self._warm:
                await self._evict(sandbox, reason="broken")
        orphan_after_s = self.settings.idle_timeout_s * ORPHAN_LEASE_FACTOR
        for leased in list(self._leases.values()):
            if leased.in_flight == 0 and now - leased.last_used >= orphan_after_s:
                log.info("sandbox.lease_expired", workspace_id=leased.lease.workspace_id)
                await self.release(leased.lease)
        self._refill()

    async def _evict(self, sandbox: _Sandbox, *, reason: str) -> None:
        if sandbox in self._warm:
            self._warm.remove(sandbox)
            log.info("sandbox.evicted", sandbox_id=sandbox.sandbox_id, reason=reason)
            await self._destroy(sandbox.sandbox_id)

    async def _maintain_forever(self) -> None:
        shortest = min(self.settings.idle_timeout_s, self.settings.max_lifetime_s)
        interval_s = max(0.05, min(shortest / 4, 5.0))
        while not self._closing:
            try:
                await self.maintain()
            except (SandboxError, OSError) as exc:  # The next round retries.
                log.warning("sandbox_pool.maintain_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval_s)
            self._wake.clear()
