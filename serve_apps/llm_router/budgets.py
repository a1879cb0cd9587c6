"""``BudgetGuard``: refuses a call before it is made when its run's or its user's budget is
spent.

The run's spend comes from the caller when it counts it (``CallContext.run_spent_usd``: an
agent run is the single writer of its log, which holds every call's cost), else from the run's
usage records. The user's spend today is read from the usage records at most once per
``cache_ttl_s`` per replica; what this replica records meanwhile is added to it, so only spend
through other replicas can be up to ``cache_ttl_s`` late. As before, a call is checked before
it is made, so one call can overshoot a budget by its own cost.
"""

from __future__ import annotations

from datetime import datetime

from serve_apps.llm_router.errors import BudgetExceeded
from serve_apps.llm_router.settings import LLMSettings
from serve_apps.llm_router.ttl_cache import TTLCache
from serve_apps.llm_router.types import CallContext
from serve_apps.llm_router.usage import UsageRecorder, start_of_utc_day

__all__ = ["BudgetGuard"]


class BudgetGuard:
    def __init__(self, recorder: UsageRecorder, settings: LLMSettings) -> None:
        self._recorder = recorder
        self._user_limit_usd = settings.user_daily_budget_usd
        self._user_spend: TTLCache[tuple[str, datetime], float] = TTLCache(
            ttl_s=settings.cache_ttl_s
        )

    async def check(self, context: CallContext) -> None:
        """Raise ``BudgetExceeded`` when the run's or the user's budget is spent."""
        if context.run_id is not None and context.run_budget_usd is not None:
            spent = context.run_spent_usd
            if spent is None:
                spent = await self._recorder.spent_by_run(context.run_id)
            if spent >= context.run_budget_usd:
                raise BudgetExceeded("run", context.run_id, context.run_budget_usd, spent)
        limit = self._user_limit_usd
        if context.user_id is not None and limit is not None:
            spent = await self._spent_today(context.user_id)
            if spent >= limit:
                raise BudgetExceeded("user", context.user_id, limit, spent)

    def recorded(self, context: CallContext, cost_usd: float) -> None:
        """Count a call this replica just recorded in the user's cached spend."""
        if context.user_id is None or not cost_usd:
            return
        key = (context.user_id, start_of_utc_day())
        known, spent = self._user_spend.get(key)
        if known and spent is not None:
            self._user_spend.replace(key, spent + cost_usd)

    async def _spent_today(self, user_id: str) -> float:
        key = (user_id, start_of_utc_day())
        known, spent = self._user_spend.get(key)
        if known and spent is not None:
            return spent
        spent = await self._recorder.spent_by_user_since(user_id, key[1])
        self._user_spend.put(key, spent)
        return spent
