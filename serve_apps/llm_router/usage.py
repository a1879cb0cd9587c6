"""Usage records of model calls (tokens, cost) and the spend queries budgets are checked with."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, func, insert, select

from serve_apps.llm_router.types import LLM_USAGE_KIND, Usage
from state.db import Database
from state.models import UsageRecord, new_id, utcnow

__all__ = ["LLM_USAGE_KIND", "UsageRecorder", "start_of_utc_day"]

# Built once, executed with each row's values (Core, not ORM): one call's record costs a
# fraction of the CPU of an ORM unit of work or a statement built per call.
_INSERT = insert(cast(Table, UsageRecord.__table__))


def start_of_utc_day(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class UsageRecorder:
    """Writes one ``UsageRecord`` (kind ``llm``) per call and sums spend for budgets."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        usage: Usage,
        *,
        model: str,
        user_id: str | None,
        workspace_id: str | None,
        run_id: str | None,
    ) -> str:
        """Store ``usage``; an unknown cost is stored as 0. Return the record's id."""
        record_id = new_id()
        row = {
            "id": record_id,
            "user_id": user_id,
            "workspace_id": workspace_id,
            "run_id": run_id,
            "kind": LLM_USAGE_KIND,
            "model": model,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cost_usd": usage.cost_usd or 0.0,
            "quantity": 1,
            "created_at": utcnow(),
        }
        async with self._db.engine.begin() as connection:
            await connection.execute(_INSERT, row)
        return record_id

    async def spent_by_run(self, run_id: str) -> float:
        """USD recorded for ``run_id`` so far."""
        query = select(func.coalesce(func.sum(UsageRecord.cost_usd), 0)).where(
            UsageRecord.run_id == run_id, UsageRecord.kind == LLM_USAGE_KIND
        )
        return await self._scalar(query)

    async def spent_by_user_since(self, user_id: str, since: datetime) -> float:
        """USD recorded for ``user_id`` at or after ``since``."""
        query = select(func.coalesce(func.sum(UsageRecord.cost_usd), 0)).where(
            UsageRecord.user_id == user_id,
            UsageRecord.created_at >= since,
            UsageRecord.kind == LLM_USAGE_KIND,
        )
        return await self._scalar(query)

    async def _scalar(self, query: object) -> float:
        async with self._db.session() as session:
            value = await session.scalar(query)  # type: ignore[call-overload]
        return float(value or 0)
