"""Budgets and provider keys as a router replica sees them: the run's spend as its caller
counts it, usage its caller records itself, and what a replica caches for ``cache_ttl_s``."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from serve_apps.llm_router.errors import BudgetExceeded
from serve_apps.llm_router.provider_keys import ProviderKeyStore
from serve_apps.llm_router.types import CallContext, ChatRequest
from state.db import Database
from state.models import UsageRecord
from tests.harness.fake_openai import FakeOpenAI, Reply
from tests.integration import llm_fixtures
from tests.integration.llm_fixtures import FAST_RETRIES
from tests.integration.test_llm_router import HELLO, KEYS, add_user_and_workspace, make_router

fake_openai_server = llm_fixtures.fake_openai_server
fake_openai = llm_fixtures.fake_openai


async def usage_rows(db: Database) -> list[UsageRecord]:
    async with db.session() as session:
        return list(await session.scalars(select(UsageRecord)))


async def test_a_run_budget_is_checked_against_the_spend_its_caller_counts(
    fake_openai: FakeOpenAI, database: Database
) -> None:
    user_id, _ = await add_user_and_workspace(database)
    router = make_router(fake_openai, db=database)
    fake_openai.script.on_message("hello", Reply.text("ok"), repeat=True)

    def call(spent: float) -> ChatRequest:
        context = CallContext(
            user_id=user_id, run_id="r1", run_budget_usd=0.0015, run_spent_usd=spent
        )
        return ChatRequest(messages=HELLO, context=context)

    await router.complete(call(0.001))
    with pytest.raises(BudgetExceeded) as caught:
        await router.complete(call(0.0015))
    assert (caught.value.scope, caught.value.spent_usd) == ("run", pytest.approx(0.0015))
    assert len(fake_openai.requests) == 1  # the refused call never reached the provider


async def test_usage_its_caller_records_is_not_recorded_again_but_counts_for_the_user(
    fake_openai: FakeOpenAI, database: Database
) -> None:
    user_id, _ = await add_user_and_workspace(database)
    settings = FAST_RETRIES.model_copy(update={"user_daily_budget_usd": 0.002})
    router = make_router(fake_openai, db=database, settings=settings)
    fake_openai.script.on_message(
        "hello", Reply.text("ok", prompt_tokens=1000, completion_tokens=0), repeat=True
    )
    context = CallContext(user_id=user_id, run_id="r1", usage_recorded_by_caller=True)
    request = ChatRequest(messages=HELLO, context=context)

    first = await router.complete(request)  # spends 0.001 each
    await router.complete(request)
    assert first.usage.cost_usd == pytest.approx(0.001)
    assert await usage_rows(database) == []  # the caller stores them, in its own transaction
    with pytest.raises(BudgetExceeded) as caught:  # this replica counted what it served
        await router.complete(request)
    assert caught.value.scope == "user"
    assert len(fake_openai.requests) == 2


async def test_a_stored_provider_key_takes_effect_within_the_cache_ttl(
    fake_openai: FakeOpenAI, database: Database
) -> None:
    ada, _ = await add_user_and_workspace(database)
    settings = FAST_RETRIES.model_copy(update={"cache_ttl_s": 0.2})
    router = make_router(fake_openai, db=database, settings=settings)
    keys = ProviderKeyStore(database, KEYS)
    fake_openai.script.on_message("hello", Reply.text("ok"), repeat=True)
    request = ChatRequest(messages=HELLO, context=CallContext(user_id=ada))

    await router.complete(request)
    stored = await keys.put(ada, provider="openai", api_key="sk-ada")
    await asyncio.sleep(0.25)
    await router.complete(request)
    await keys.delete(ada, stored.id)
    await asyncio.sleep(0.25)
    await router.complete(request)

    assert [r.api_key for r in fake_openai.requests] == ["sk-fake", "sk-ada", "sk-fake"]
