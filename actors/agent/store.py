"""RunStore: agent runs and their append-only event log in the database.

The log is the run's durable copy: every event is appended with the next ``seq`` before it is
acted on, and ``(run_id, seq)`` is unique, so two hosts that somehow drive the same run cannot
both append (the second fails on the constraint and stops). Reads need no host.

A run appends the events of one moment together (``append_batch``: e.g. a model reply's usage,
message and first tool call, with the run row's progress and the call's usage record) in one
transaction: one commit (one fsync on SQLite) instead of one per event. The statements of a
step are built once and run through SQLAlchemy Core, not the ORM's unit of work, which costs
several times the CPU per row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
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
from serve_apps.llm_router.types import LLM_USAGE_KIND, ChatResponse
from state.db import Database
from state.models import AgentEvent, AgentRun, UsageRecord, new_id, utcnow

__all__ = ["LogConflict", "RunStore", "RunUpdate", "UsageEntry"]

# The statements of a step, built once (Core, not ORM): building and compiling a statement per
# call costs more CPU than SQLite takes to run it.
_RUNS = cast(Table, AgentRun.__table__)
_INSERT_EVENTS = insert(cast(Table, AgentEvent.__table__))
_UPDATE_RUN = update(_RUNS).where(_RUNS.c.id == bindparam("run_key"))
_RUN_STATUS = select(_RUNS.c.status).where(_RUNS.c.id == bindparam("run_key"))
_INSERT_USAGE = insert(cast(Table, UsageRecord.__table__))


class LogConflict(AgentError):
    """Another writer appended to this run's log: this one must stop (fencing)."""


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """A model call's usage record (``usage_records``, kind ``llm``), stored by the run with
    its log's ``usage`` event instead of by the router (``usage_recorded_by_caller``)."""

    user_id: str | None
    workspace_id: str
    response: ChatResponse

    def row(self, run_id: str) -> dict[str, Any]:
        usage = self.response.usage
        return {
            "id": new_id(),
            "user_id": self.user_id,
            "workspace_id": self.workspace_id,
            "run_id": run_id,
            "kind": LLM_USAGE_KIND,
            "model": self.response.model,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cost_usd": usage.cost_usd or 0.0,
            "quantity": 1,
            "created_at": utcnow(),
        }


@dataclass(frozen=True, slots=True)
class RunUpdate:
    """Columns of a run's row to change; ``None`` (or False) leaves a column as it is."""

    status: RunStatus | None = None
    steps: int | None = None
    result: dict[str, Any] | None = None
    started: bool = False
    finished: bool = False

    def values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if self.status is not None:
            values["status"] = self.status
        if self.steps is not None:
            values["steps"] = self.steps
        if self.result is not None:
            values["result"] = self.result
        if self.started:
            values["started_at"] = utcnow()
        if self.finished:
            values["finished_at"] = utcnow()
        return values


class RunStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- runs -----------------------------------------------------------------------------------

    async def create(
        self, request: RunRequest, *, limits: dict[str, Any], host: str | None = None
    ) -> RunInfo:
        """Record a new run (``queued``), placed on ``host`` when given."""
        row = AgentRun(
            workspace_id=request.workspace_id,
            user_id=request.user_id,
            prompt=request.prompt,
            model=request.model,
            status="queued",
            host=host,
            steps=0,
            limits=limits,
            result={},
        )
        async with self._db.session() as session, session.begin():
            session.add(row)
        return _info(row)

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
        change = RunUpdate(status, steps, result, started=started, finished=finished)
        async with self._db.engine.begin() as connection:
            await connection.execute(_UPDATE_RUN, {"run_key": run_id, **change.values()})

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
        async with self._db.engine.connect() as connection:
            value = await connection.scalar(_RUN_STATUS, {"run_key": run_id})
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
        (event,) = await self.append_batch(run_id, seq, [(kind, payload)])
        return event

    async def append_batch(
        self,
        run_id: str,
        seq: int,
        events: Sequence[tuple[str, dict[str, Any]]],
        *,
        run: RunUpdate | None = None,
        usage: UsageEntry | None = None,
    ) -> list[RunEvent]:
        """Append ``events`` as ``seq``, ``seq + 1``, ... (none is fine), apply ``run`` to the
        run's row and store ``usage``, all in one transaction: all of it is durable, or none.
        ``LogConflict`` if one of those seqs is taken (another writer)."""
        now = utcnow()
        appended = [
            RunEvent(run_id=run_id, seq=seq + i, kind=kind, payload=dict(payload), created_at=now)
            for i, (kind, payload) in enumerate(events)
        ]
        rows = [
            {"run_id": run_id, "seq": e.seq, "kind": e.kind, "payload": e.payload,
             "created_at": now}
            for e in appended
        ]  # fmt: skip
        values = run.values() if run is not None else {}
        try:
            async with self._db.engine.begin() as connection:
                if rows:
                    await connection.execute(_INSERT_EVENTS, rows)
                if values:
                    await connection.execute(_UPDATE_RUN, {"run_key": run_id, **values})
                if usage is not None:
                    await connection.execute(_INSERT_USAGE, usage.row(run_id))
        except IntegrityError as exc:
            raise LogConflict(f"event {seq} of run {run_id} was written by another host") from exc
        return appended

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
