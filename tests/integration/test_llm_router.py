"""LLMRouter through litellm against the scripted OpenAI server on loopback (as production)."""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from accounts.crypto import VersionedCipher
from serve_apps.llm_router.config import parse_model_config
from serve_apps.llm_router.errors import (
    BudgetExceeded,
    ContextWindowExceeded,
    ModelNotFound,
    ProviderError,
    ProviderTimeout,
    RateLimited,
)
from serve_apps.llm_router.litellm_router import LiteLLMBackend
from serve_apps.llm_router.provider_keys import ProviderKeyStore
from serve_apps.llm_router.router import LLMRouter
from serve_apps.llm_router.settings import LLMSettings
from serve_apps.llm_router.types import CallContext, ChatRequest, StreamAccumulator
from serve_apps.llm_router.usage import UsageRecorder
from state.db import Database
from state.models import UsageRecord, User, Workspace
from tests.harness.fake_openai import FakeOpenAI, Reply, ToolCall
from tests.integration import llm_fixtures
from tests.integration.llm_fixtures import FAST_RETRIES, model_config

# The scripted OpenAI server (one per session, reset for each test).
fake_openai_server = llm_fixtures.fake_openai_server
fake_openai = llm_fixtures.fake_openai

HELLO = [{"role": "user", "content": "Say hello"}]
KEYS = VersionedCipher(["k1:" + "A" * 43 + "="])  # 32 zero bytes, base64


def make_router(
    server: FakeOpenAI,
    *,
    db: Database | None = None,
    settings: LLMSettings = FAST_RETRIES,
    **router_settings: Any,
) -> LLMRouter:
    config = parse_model_config(model_config(server, **router_settings))
    backend = LiteLLMBackend(config, settings)
    recorder = UsageRecorder(db) if db is not None else None
    keys = ProviderKeyStore(db, KEYS) if db is not None else None
    return LLMRouter(backend, settings=settings, recorder=recorder, keys=keys)


async def add_user_and_workspace(db: Database, email: str = "ada@example.com") -> tuple[str, str]:
    async with db.session() as session, session.begin():
        user = User(email=email)
        session.add(user)
        await session.flush()
        workspace = Workspace(name="w", owner_id=user.id)
        session.add(workspace)
    return user.id, workspace.id


async def test_completion_returns_the_message_and_usage_with_cost(fake_openai: FakeOpenAI) -> None:
    fake_openai.script.add(
        "fast", Reply.text("Hello there", prompt_tokens=100, completion_tokens=20)
    )
    response = await make_router(fake_openai).complete(ChatRequest(messages=HELLO))

    assert response.message.content == "Hello there"
    assert response.model == "fast"  # the default: the first model in the file
    assert response.finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (100, 20)
    assert response.usage.cost_usd == pytest.approx(100 * 0.000001 + 20 * 0.000002)
    assert fake_openai.requests[0].messages == HELLO


async def test_an_alias_reaches_its_model_and_unknown_names_are_model_not_found(
    fake_openai: FakeOpenAI,
) -> None:
    router = make_router(fake_openai)
    fake_openai.script.add("fast", Reply.text("via alias"))
    response = await router.complete(ChatRequest(model="gpt-4o-mini", messages=HELLO))
    assert response.message.content == "via alias"

    with pytest.raises(ModelNotFound) as caught:
        await router.complete(ChatRequest(model="gpt-5-ultra", messages=HELLO))
    assert caught.value.available == ["fast", "backup", "tiny"]
    assert [card.id for card in await router.models()] == ["fast", "backup", "tiny"]


async def test_tool_calls_arrive_with_their_arguments_verbatim(fake_openai: FakeOpenAI) -> None:
    fake_openai.script.add(
        "fast",
        Reply.tool_calls_of(
            ToolCall("write_file", {"path": "pkg/__init__.py", "content": ""}),
            ToolCall("run", '{"command": "pytest"'),  # malformed JSON stays as sent
        ),
    )
    tools = [{"type": "function", "function": {"name": "write_file", "parameters": {}}}]
    response = await make_router(fake_openai).complete(
        ChatRequest(messages=HELLO, tools=tools, tool_choice="auto")
    )

    assert response.finish_reason == "tool_calls"
    first, second = response.message.tool_calls
    assert first.name == "write_file"
    assert first.arguments == '{"path": "pkg/__init__.py", "content": ""}'
    assert second.arguments == '{"command": "pytest"'
    assert fake_openai.requests[0].body["tools"] == tools
    history = response.message.to_openai()
    assert history["tool_calls"][0]["function"]["name"] == "write_file"


async def test_streaming_delivers_content_tool_call_deltas_and_usage(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.script.add(
        "fast",
        Reply.tool_calls_of(
            ToolCall("edit_file", {"path": "a.py", "old": "x", "new": "y"}),
            content="Let me fix that.",
            prompt_tokens=50,
            completion_tokens=30,
        ),
    )
    accumulated = StreamAccumulator("fast")
    chunks = 0
    async for chunk in make_router(fake_openai).stream(ChatRequest(messages=HELLO)):
        accumulated.add(chunk)
        chunks += 1
    response = accumulated.response()

    assert chunks > 4
    assert response.message.content == "Let me fix that."
    (call,) = response.message.tool_calls
    assert call.name == "edit_file"
    assert call.arguments == '{"path": "a.py", "old": "x", "new": "y"}'
    assert response.finish_reason == "tool_calls"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (50, 30)
    assert response.usage.cost_usd == pytest.approx(50e-6 + 60e-6)
    assert fake_openai.requests[0].stream


async def test_a_failing_model_falls_back_to_the_next(fake_openai: FakeOpenAI) -> None:
    fake_openai.script.on_message("hello", Reply.error(500), model="fast", repeat=True)
    fake_openai.script.add("backup", Reply.text("from the backup"))

    response = await make_router(fake_openai).complete(ChatRequest(messages=HELLO))

    assert response.message.content == "from the backup"
    assert response.served_by == "backup"
    assert response.model == "fast"
    # Retried on the failing model first, then the fallback answered.
    assert len(fake_openai.requests_for("fast")) == 3
    assert len(fake_openai.requests_for("backup")) == 1


async def test_rate_limits_are_retried_then_reported(fake_openai: FakeOpenAI) -> None:
    router = make_router(fake_openai)
    fake_openai.script.add("tiny", Reply.rate_limited(), Reply.text("after the 429"))
    response = await router.complete(ChatRequest(model="tiny", messages=HELLO))
    assert response.message.content == "after the 429"
    assert len(fake_openai.requests_for("tiny")) == 2

    fake_openai.script.add("tiny", *[Reply.rate_limited()] * 3)
    with pytest.raises(RateLimited) as caught:
        await router.complete(ChatRequest(model="tiny", messages=HELLO))
    assert caught.value.model == "tiny"


async def test_a_slow_provider_is_a_provider_timeout(fake_openai: FakeOpenAI) -> None:
    settings = FAST_RETRIES.model_copy(update={"num_retries": 0})
    fake_openai.script.add("tiny", Reply.text("too late", delay_s=2.0))
    started = time.monotonic()
    with pytest.raises(ProviderTimeout) as caught:
        await make_router(fake_openai, settings=settings).complete(
            ChatRequest(model="tiny", messages=HELLO, timeout_s=0.3)
        )
    assert time.monotonic() - started < 1.8
    assert caught.value.model == "tiny"


async def test_context_length_errors_are_context_window_exceeded(fake_openai: FakeOpenAI) -> None:
    fake_openai.script.add("tiny", Reply.context_length_exceeded())
    with pytest.raises(ContextWindowExceeded) as caught:
        await make_router(fake_openai).complete(ChatRequest(model="tiny", messages=HELLO))
    assert "maximum context length" in caught.value.detail
    assert len(fake_openai.requests_for("tiny")) == 1  # not retried: it would fail again
    again = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(again, ContextWindowExceeded)
    assert again.model == "tiny"


async def test_an_unauthorised_provider_key_is_a_provider_error(fake_openai: FakeOpenAI) -> None:
    fake_openai.script.add("tiny", Reply.error(401, "Incorrect API key", type_="auth"))
    with pytest.raises(ProviderError) as caught:
        await make_router(fake_openai).complete(ChatRequest(model="tiny", messages=HELLO))
    assert caught.value.status == 401


async def test_usage_is_recorded_per_user_workspace_and_run(
    fake_openai: FakeOpenAI, database: Database
) -> None:
    user_id, workspace_id = await add_user_and_workspace(database)
    router = make_router(fake_openai, db=database)
    context = CallContext(user_id=user_id, workspace_id=workspace_id, run_id="run1")
    fake_openai.script.add(
        "fast",
        Reply.text("one", prompt_tokens=1000, completion_tokens=100),
        Reply.text("two", prompt_tokens=10, completion_tokens=5),
    )
    await router.complete(ChatRequest(messages=HELLO, context=context))
    async for _ in router.stream(ChatRequest(messages=HELLO, context=context)):
        pass

    async with database.session() as session:
        rows = (await session.scalars(select(UsageRecord).order_by(UsageRecord.created_at))).all()
    assert [(r.prompt_tokens, r.completion_tokens) for r in rows] == [(1000, 100), (10, 5)]
    assert all(
        (r.user_id, r.workspace_id, r.run_id, r.kind, r.model)
        == (user_id, workspace_id, "run1", "llm", "fast")
        for r in rows
    )
    assert rows[0].cost_usd == pytest.approx(1000e-6 + 200e-6)
    assert rows[1].cost_usd == pytest.approx(10e-6 + 10e-6)


async def test_budgets_stop_calls_before_they_are_made(
    fake_openai: FakeOpenAI, database: Database
) -> None:
    user_id, _ = await add_user_and_workspace(database)
    settings = FAST_RETRIES.model_copy(update={"user_daily_budget_usd": 0.002})
    router = make_router(fake_openai, db=database, settings=settings)
    fake_openai.script.on_message(
        "hello", Reply.text("ok", prompt_tokens=1000, completion_tokens=0), repeat=True
    )
    run = CallContext(user_id=user_id, run_id="r1", run_budget_usd=0.0015)

    await router.complete(ChatRequest(messages=HELLO, context=run))  # spends 0.001
    await router.complete(ChatRequest(messages=HELLO, context=run))  # 0.002: over the run's
    with pytest.raises(BudgetExceeded) as caught:
        await router.complete(ChatRequest(messages=HELLO, context=run))
    assert (caught.value.scope, caught.value.owner_id) == ("run", "r1")
    assert caught.value.spent_usd == pytest.approx(0.002)
    assert len(fake_openai.requests) == 2  # the refused call never reached the provider

    other_run = CallContext(user_id=user_id, run_id="r2")
    with pytest.raises(BudgetExceeded) as caught:  # the user's daily budget is spent too
        await router.complete(ChatRequest(messages=HELLO, context=other_run))
    assert caught.value.scope == "user"
    assert "Budget exceeded" in caught.value.detail


async def test_a_users_own_provider_key_is_used_for_their_calls(
    fake_openai: FakeOpenAI, database: Database
) -> None:
    ada, _ = await add_user_and_workspace(database, "ada@example.com")
    bob, _ = await add_user_and_workspace(database, "bob@example.com")
    await ProviderKeyStore(database, KEYS).put(ada, provider="openai", api_key="sk-ada")
    router = make_router(fake_openai, db=database)
    fake_openai.script.on_message("hello", Reply.text("ok"), repeat=True)

    await router.complete(ChatRequest(messages=HELLO, context=CallContext(user_id=ada)))
    await router.complete(ChatRequest(messages=HELLO, context=CallContext(user_id=bob)))

    assert [request.api_key for request in fake_openai.requests] == ["sk-ada", "sk-fake"]


async def test_the_serve_deployment_answers_through_its_handle(tmp_path: Path) -> None:
    from ray import serve

    from serve_apps.llm_router.client import ServeLLMClient
    from serve_apps.llm_router.deployment import LLMRouterDeployment
    from state.migrations import upgrade
    from state.settings import DatabaseSettings

    db_url = f"sqlite+aiosqlite:///{tmp_path / 'vibecode.db'}"
    upgrade(db_url)
    app = LLMRouterDeployment.bind(LLMSettings(demo=True), DatabaseSettings(url=db_url))
    client = ServeLLMClient(serve.run(app, _local_testing_mode=True))

    assert [card.id for card in await client.models()] == ["demo"]
    response = await client.complete(ChatRequest(messages=HELLO))
    assert "demo model" in (response.message.content or "")
    accumulated = StreamAccumulator("demo")
    async for chunk in client.stream(ChatRequest(messages=HELLO)):
        accumulated.add(chunk)
    assert accumulated.response().message.content == response.message.content
    with pytest.raises(ModelNotFound):
        await client.complete(ChatRequest(model="gpt-4", messages=HELLO))
