"""RunStore: agent runs and their append-only event log in the database.

The log is the run's durable copy: every event is appended with the next ``seq`` before it is
acted on, and ``(run_id, seq)`` is unique, so two hosts that somehow drive the same run cannot
both append (the second fails on the constraint and stops). Reads need no host.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from actors.agent.api import (
    ACTIVE_STATUSES,
    RunEvent,
    RunInfo,
    RunRequest,
    RunStatus,
    RunUsage,
)
from actors.agent.errors import AgentError, RunNotFound
from state.db import Database
from state.models import AgentEvent, AgentRun, utcnow

__all__ = ["LogConflict", "RunStore"]


class LogConflict(AgentError):
    """Another writer appended to this run's log: this one must stop (fencing)."""


class RunStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- runs -----------------------------------------------------------------------------------

    async def create(self, request: RunRequest, *, limits: dict[str, Any]) -> RunInfo:
        row = AgentRun(
            workspace_id=request.workspace_id,
            user_id=request.user_id,
            prompt=request.prompt,
            model=request.model,
            status="queued",
            steps=0,
            limits=limits,
            result={},
        )
        async with self._db.session() as session, session.begin():
            session.add(row)
        return await self.get(row.id)

    async def get(self, run_id: str) -> RunInfo:
        async with self._db.session() as session:
            row = await session.get(AgentRun, run_id)
            if row is None:
                raise RunNotFound(f"no agent run {run_id!r}")
            return _info(row)

    async def list_for_workspace(self, workspace_id: str, *, limit: int = 50) -> list[RunInfo]:
        query = (
            select(AgentRun)
            .where(AgentRun.workspace_id == workspace_id)
            .order_by(AgentRun.created_at.desc(), AgentRun.id.desc())
            .limit(limit)
        )
        async with self._db.session() as session:
            return [_info(row) for row in await session.scalars(query)]

    async def set_host(self, run_id: str, host: str) -> None:
        async with self._db.session() as session, session.begin():
            await session.execute(update(AgentRun).where(AgentRun.id == run_id).values(host=host))

    async def update(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        steps: int | None = None,
        result: dict[str, Any] | None = None,
        started: bool = False,
        finished: bool = False,
    ) -> None:
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = status
        if steps is not None:
            values["steps"] = steps
        if result is not None:
            values["result"] = result
        if started:
            values["started_at"] = utcnow()
        if finished:
            values["finished_at"] = utcnow()
        async with self._db.session() as session, session.begin():
            await session.execute(update(AgentRun).where(AgentRun.id == run_id).values(**values))

    async def request_cancel(self, run_id: str) -> bool:
        """Mark an active run ``cancelling``; False when it had already ended."""
        async with self._db.session() as session, session.begin():
            outcome = await session.execute(
                update(AgentRun)
                .where(AgentRun.id == run_id, AgentRun.status.in_(("queued", "running")))
                .values(status="cancelling")
            )
        return bool(cast(Any, outcome).rowcount)

    async def status(self, run_id: str) -> RunStatus:
        async with self._db.session() as session:
            value = await session.scalar(select(AgentRun.status).where(AgentRun.id == run_id))
        if value is None:
            raise RunNotFound(f"no agent run {run_id!r}")
        return cast(RunStatus, value)

    async def active_on_host(self, host: str) -> list[str]:
        """Ids of the active runs recorded with ``host``, oldest first."""
        query = (
            select(AgentRun.id)
            .where(AgentRun.host == host, AgentRun.status.in_(ACTIVE_STATUSES))
            .order_by(AgentRun.created_at, AgentRun.id)
        )
        async with self._db.session() as session:
            return list(await session.scalars(query))

    async def load_by_host(self) -> Counter[str]:
        """Active runs per host: the load hint for placing a new run."""
        query = (
            select(AgentRun.host, func.count())
            .where(AgentRun.status.in_(ACTIVE_STATUSES), AgentRun.host.is_not(None))
            .group_by(AgentRun.host)
        )
        async with self._db.session() as session:
            rows = (await session.execute(query)).all()
        return Counter({str(host): int(count) for host, count in rows})

    async def first_in_line(self, run_id: str, workspace_id: str) -> str | None:
        """The id of the oldest active run of ``workspace_id``: the one that may write now.

        Runs of one workspace run one at a time, in the order they were created."""
        query = (
            select(AgentRun.id)
            .where(AgentRun.workspace_id == workspace_id, AgentRun.status.in_(ACTIVE_STATUSES))
            .order_by(AgentRun.created_at, AgentRun.id)
            .limit(1)
        )
        async with self._db.session() as session:
            first = await session.scalar(query)
        return None if first is None else str(first)

    # --- the event log ---------------------------------------------------------------------------

    async def append(self, run_id: str, seq: int, kind: str, payload: dict[str, Any]) -> RunEvent:
        """Append event ``seq``; ``LogConflict`` if that seq is taken (another writer)."""
        row = AgentEvent(run_id=run_id, seq=seq, kind=kind, payload=payload, created_at=utcnow())
        try:
            async with self._db.session() as session, session.begin():
                session.add(row)
        except IntegrityError as exc:
            raise LogConflict(f"event {seq} of run {run_id} was written by another host") from exc
        return _event(row)

    async def events(self, run_id: str, *, after: int = 0, limit: int = 500) -> list[RunEvent]:
        query = (
            select(AgentEvent)
            .where(AgentEvent.run_id == run_id, AgentEvent.seq > after)
            .order_by(AgentEvent.seq)
            .limit(limit)
        )
        async with self._db.session() as session:
            return [_event(row) for row in await session.scalars(query)]

    async def all_events(self, run_id: str) -> list[RunEvent]:
        events: list[RunEvent] = []
        while True:
            page = await self.events(run_id, after=events[-1].seq if events else 0, limit=1000)
            events.extend(page)
            if len(page) < 1000:
                return events


def _info(row: AgentRun) -> RunInfo:
    result = row.result or {}
    return RunInfo(
        run_id=row.id,
        workspace_id=row.workspace_id,
        user_id=row.user_id,
        prompt=row.prompt,
        model=row.model,
        status=cast(RunStatus, row.status),
        host=row.host,
        steps=row.steps,
        usage=RunUsage.of(result.get("usage")),
        limits=dict(row.limits or {}),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        message=result.get("message"),
        stop_reason=result.get("stop_reason"),
        files_changed=tuple(result.get("files_changed") or ()),
        executions=tuple(result.get("executions") or ()),
    )


def _event(row: AgentEvent) -> RunEvent:
    created: datetime = row.created_at
    return RunEvent(
        run_id=row.run_id, seq=row.seq, kind=row.kind, payload=dict(row.payload), created_at=created
    )
