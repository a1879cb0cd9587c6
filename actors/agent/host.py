"""AgentHostCore: many agent runs in one process (the logic of an ``AgentHost`` actor).

Each run is an ``AgentLoop`` driven by an asyncio task the host owns. On ``start`` the host
resumes the active runs recorded with its name (a restarted host picks up what its previous
process left). Closing the host stops its tasks without ending their runs: they stay active in
the database and resume when a host with this name starts again.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import structlog

from actors.agent.api import RunInfo, RunRequest
from actors.agent.loop import AgentLoop
from actors.agent.settings import AgentSettings
from actors.agent.sink import NullSink, RunEventSink
from actors.agent.store import LogConflict, RunStore
from actors.agent.tools import Toolbox
from actors.workspace.api import Author, WorkspaceWriter
from actors.workspace.reader import WorkspaceReader
from serve_apps.llm_router.ports import LLMClient

__all__ = ["AgentHostCore", "run_limits"]

log = structlog.get_logger("agent.host")


def run_limits(request: RunRequest, settings: AgentSettings) -> dict[str, Any]:
    """The guardrails a run is created with: a request may tighten the settings, not loosen."""
    steps = settings.max_steps
    if request.max_steps is not None:
        steps = max(1, min(request.max_steps, steps))
    budget = settings.default_run_budget_usd
    if request.max_cost_usd is not None:
        budget = request.max_cost_usd if budget is None else min(request.max_cost_usd, budget)
    return {
        "max_steps": steps,
        "max_cost_usd": budget,
        "max_tokens": settings.max_tokens,
        "max_wall_time_s": settings.max_wall_time_s,
        "request_id": request.request_id,
    }


class AgentHostCore:
    def __init__(
        self,
        name: str,
        *,
        store: RunStore,
        llm: LLMClient,
        writer: WorkspaceWriter,
        reader: WorkspaceReader,
        settings: AgentSettings,
        sink: RunEventSink | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self.settings = settings
        self._llm = llm
        self._writer = writer
        self._reader = reader
        self._sink = sink or NullSink()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._loops: dict[str, AgentLoop] = {}
        self._starting: set[str] = set()
        self._closing = False

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> list[str]:
        """Resume the active runs recorded with this host's name; return their ids."""
        resumed = await self.store.active_on_host(self.name)
        for run_id in resumed:
            await self.start_run(run_id)
        if resumed:
            log.info("agent_host.resumed", host=self.name, runs=len(resumed))
        return resumed

    async def aclose(self) -> None:
        """Stop every run's task; the runs stay active, to resume on this host's next start."""
        self._closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> AgentHostCore:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- runs -----------------------------------------------------------------------------------

    def load(self) -> int:
        """Runs this host is driving (queued ones included)."""
        return len(self._tasks)

    async def start_run(self, run_id: str) -> None:
        """Drive ``run_id`` here (no-op when it already runs or is starting here: the host's
        resume on boot and the client's start may both ask for a new run)."""
        if run_id in self._tasks or run_id in self._starting or self._closing:
            return
        self._starting.add(run_id)
        try:
            run = await self.store.get(run_id)
            if not run.active or self._closing:
                return
            loop = self._loop(run)
            self._loops[run_id] = loop
            self._tasks[run_id] = asyncio.create_task(self._drive(loop), name=f"agent-run-{run_id}")
        finally:
            self._starting.discard(run_id)

    async def cancel(self, run_id: str) -> bool:
        """Stop ``run_id`` if it runs here (its loop records the cancellation); else False."""
        loop, task = self._loops.get(run_id), self._tasks.get(run_id)
        if loop is None or task is None:
            return False
        loop.cancel_requested = True
        task.cancel()
        return True

    async def wait(self, run_id: str) -> None:
        """Return when this host's task for ``run_id`` is done (at once if there is none)."""
        task = self._tasks.get(run_id)
        if task is not None:
            await asyncio.shield(task)

    def _loop(self, run: RunInfo) -> AgentLoop:
        author = Author(
            user_id=run.user_id,
            kind="agent",
            run_id=run.run_id,
            request_id=run.limits.get("request_id"),
        )
        toolbox = Toolbox(
            writer=self._writer,
            reader=self._reader,
            workspace_id=run.workspace_id,
            author=author,
            settings=self.settings,
        )
        return AgentLoop(
            run,
            store=self.store,
            llm=self._llm,
            toolbox=toolbox,
            settings=self.settings,
            sink=self._sink,
            host=self.name,
        )

    async def _drive(self, loop: AgentLoop) -> None:
        try:
            await loop.run()
        except LogConflict:
            log.warning("agent_host.log_conflict", host=self.name, run_id=loop.run_id)
        except asyncio.CancelledError:
            if not self._closing:
                raise
        except Exception as exc:
            log.exception("agent_host.run_crashed", host=self.name, run_id=loop.run_id)
            await loop.fail(exc)
        finally:
            self._tasks.pop(loop.run_id, None)
            self._loops.pop(loop.run_id, None)
