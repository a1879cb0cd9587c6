"""Context management: condensing before the window is exceeded, and after a provider says so."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from actors.agent import AgentSettings, condense, estimate_tokens
from serve_apps.llm_router.errors import ContextWindowExceeded
from tests.harness.agent_world import ScriptedLLM, open_world, tool


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


def history(turns: int, output_chars: int) -> list[dict[str, object]]:
    messages: list[dict[str, object]] = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "the task"},
    ]
    for i in range(turns):
        call = {"id": f"c{i}", "type": "function", "function": {"name": "read_file", "arguments": json.dumps({"path": f"f{i}"})}}  # fmt: skip
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"c{i}", "content": "x" * output_chars})
    return messages


def test_a_history_within_budget_is_unchanged() -> None:
    messages = history(3, 100)
    assert condense(messages, budget_tokens=10_000, keep_recent_turns=2) == (messages, 0)


def test_older_outputs_go_first_then_older_turns_become_a_summary() -> None:
    messages = history(10, 4000)
    assert estimate_tokens(messages) > 10_000
    view, summarized = condense(messages, budget_tokens=5_000, keep_recent_turns=2)
    assert estimate_tokens(view) <= 5_000
    assert view[:2] == messages[:2]  # the system prompt and the task stay whole
    assert view[-2:] == messages[-2:]  # the latest turn stays whole
    text = json.dumps(view)
    assert summarized == 0 or "Summary of earlier steps" in text

    view, summarized = condense(messages, budget_tokens=2_600, keep_recent_turns=2)
    assert estimate_tokens(view) <= 2_600
    assert summarized > 0
    summary = str(view[2]["content"])
    assert summary.startswith("Summary of earlier steps")
    assert '- read_file({"path": "f0"}) -> ' in summary


async def test_the_loop_condenses_before_the_window_is_exceeded(
    stack: AsyncExitStack, tmp_path: Path
) -> None:
    big = "y" * 12_000
    steps = [tool("write_file", {"path": f"f{i}.txt", "content": big}) for i in range(6)]
    steps += [tool("read_file", {"path": f"f{i}.txt"}) for i in range(6)]
    steps.append(tool("finish", {"summary": "done"}))
    llm = ScriptedLLM(steps=list(steps))
    settings = AgentSettings(context_token_budget=8_000, tool_output_chars=12_000)
    world = await open_world(stack, tmp_path, llm, settings)
    run = await world.finished((await world.start()).run_id)

    assert run.status == "succeeded"
    sent = [estimate_tokens(r.messages, r.tools) for r in llm.requests]
    assert max(sent) <= 8_000
    contexts = [p for k, p in await world.events(run.run_id) if k == "context"]
    assert contexts
    assert contexts[0]["reason"] == "estimate"


async def test_a_context_length_error_condenses_and_retries(
    stack: AsyncExitStack, tmp_path: Path
) -> None:
    steps: list[object] = [tool("write_file", {"path": f"f{i}.txt", "content": "z" * 3000}) for i in range(4)]  # fmt: skip
    steps += [ContextWindowExceeded("fast", "too long"), tool("finish", {"summary": "done"})]
    llm = ScriptedLLM(steps=steps)  # type: ignore[arg-type]
    world = await open_world(stack, tmp_path, llm, AgentSettings(tool_output_chars=8_000))
    run = await world.finished((await world.start()).run_id)

    assert (run.status, run.message) == ("succeeded", "done")
    failed, retried = llm.requests[-2], llm.requests[-1]
    assert estimate_tokens(retried.messages) < estimate_tokens(failed.messages)
    contexts = [p for k, p in await world.events(run.run_id) if k == "context"]
    assert [c["reason"] for c in contexts][-2:] == ["context_window", "estimate"]


async def test_a_context_that_never_fits_fails_the_run_clearly(
    stack: AsyncExitStack, tmp_path: Path
) -> None:
    llm = ScriptedLLM(steps=[ContextWindowExceeded("fast", "too long") for _ in range(5)])
    world = await open_world(stack, tmp_path, llm)
    run = await world.finished((await world.start()).run_id)
    assert (run.status, run.stop_reason) == ("failed", "context_window")
