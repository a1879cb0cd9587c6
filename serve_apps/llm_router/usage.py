"""Usage records of model calls (tokens, cost) and the spend queries budgets are checked with."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from serve_apps.llm_router.types import Usage
from state.db import Database
from state.models import UsageRecord

__all__ = ["LLM_USAGE_KIND", "UsageRecorder", "start_of_utc_day"]

LLM_USAGE_KIND = "llm"


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
        row = UsageRecord(
            user_id=user_id,
            workspace_id=workspace_id,
            run_id=run_id,
            kind=LLM_USAGE_KIND,
            model=model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost_usd or 0.0,
            quantity=1,
        )
        async with self._db.session() as session, session.begin():
            session.add(row)
        return row.id

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
