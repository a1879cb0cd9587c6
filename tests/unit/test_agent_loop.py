"""The agent loop with a scripted model and in-process workspace sessions (no Ray)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from actors.agent import AgentSettings
from serve_apps.llm_router.types import ChatMessage, ChatResponse, ToolCall
from state.models import UsageRecord
from tests.harness.agent_world import AgentWorld, ScriptedLLM, open_world, text, tool


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def world_with(
    stack: AsyncExitStack, tmp_path: Path, *steps: ChatResponse, **settings: Any
) -> AgentWorld:
    llm = ScriptedLLM(steps=list(steps))
    options = {"poll_interval_s": 0.01, **settings}
    return await open_world(stack, tmp_path, llm, AgentSettings(**options))


async def test_a_run_writes_files_as_agent_versions_and_finishes(
    stack: AsyncExitStack, tmp_path: Path
) -> None:
    world = await world_with(
        stack,
        tmp_path,
        tool("write_file", {"path": "hello.py", "content": "print('hi')\n"}),
        tool("edit_file", {"path": "hello.py", "old_string": "hi", "new_string": "hello"}),
        tool("finish", {"summary": "Wrote hello.py"}),
    )
    run = await world.finished((await world.start("write hello")).run_id)

    assert run.status == "succeeded"
    assert run.message == "Wrote hello.py"
    assert run.files_changed == ("hello.py",)
    assert run.steps == 3
    assert run.usage.model_calls == 3
    assert run.usage.total_tokens == 330
    _, data = await world.reader.read_file(world.workspace_id, "hello.py")
    assert data == b"print('hello')\n"
    versions = await world.reader.list_versions(world.workspace_id)
    assert [v.author_kind for v in versions] == ["agent", "agent"]
    assert all(v.author_id == world.user_id for v in versions)
    kinds = [kind for kind, _ in await world.events(run.run_id)]
    assert kinds[:2] == ["status", "message"]
    assert kinds[2:6] == ["usage", "message", "action", "observation"]
    assert kinds[-1] == "status"
    events = await world.store.all_events(run.run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    # Each model call is billed once, to the run, its user and its workspace.
    async with world.db.session() as session:
        records = list(await session.scalars(select(UsageRecord)))
    assert {(r.run_id, r.user_id, r.workspace_id, r.kind) for r in records} == {
        (run.run_id, world.user_id, world.workspace_id, "llm")
    }
    assert len(records) == 3
    assert sum(r.cost_usd for r in records) == pytest.approx(run.usage.cost_usd)


async def test_every_call_of_a_reply_runs_in_order_each_logged_before_it_runs(
    stack: AsyncExitStack, tmp_path: Path
) -> None:
    calls = (
        ToolCall(id="a", name="write_file", arguments='{"path": "a.txt", "content": "A"}'),
        ToolCall(id="b", name="read_file", arguments='{"path": "a.txt"}'),
        ToolCall(id="c", name="finish", arguments='{"summary": "done"}'),
        ToolCall(id="d", name="write_file", arguments='{"path": "never.txt", "content": ""}'),
    )
    reply = tool("list_files").model_copy(update={"message": ChatMessage(tool_calls=calls)})
    world = await world_with(stack, tmp_path, reply)
    run = await world.finished((await world.start()).run_id)

    assert (run.status, run.message) == ("succeeded", "done")
    log = [(k, p.get("tool_call_id")) for k, p in await world.events(run.run_id)]
    tools = [entry for entry in log if entry[0] in ("action", "observation")]
    assert tools == [
        ("action", "a"), ("observation", "a"),
        ("action", "b"), ("observation", "b"),
        ("action", "c"), ("observation", "c"),
    ]  # fmt: skip
    files = [f.path for f in await world.reader.list_files(world.workspace_id)]
    assert files == ["a.txt"]  # nothing ran after finish


async def test_a_text_answer_without_tool_calls_ends_the_run(
    stack: AsyncExitStack, tmp_path: Path
) -> None:
    world = await world_with(stack, tmp_path, text("Nothing to do."))
    run = await world.finished((await world.start()).run_id)
    assert (run.status, run.message) == ("succeeded", "Nothing to do.")


async def test_bad_arguments_and_unknown_tools_are_observations_the_model_sees(
    stack: AsyncExitStack, tmp_path: Path
) -> None:
    world = await world_with(
        stack,
        tmp_path,
        tool("write_file", '{"path": "a.txt", "content": '),
        tool("teleport", {"to": "mars"}),
        tool("finish", {"summary": "ok"}),
    )
    run = await world.finished((await world.start()).run_id)
    assert run.status == "succeeded"
    observations = [p for k, p in await world.events(run.run_id) if k == "observation"]
    assert not observations[0]["ok"]
    assert "not valid JSON" in observations[0]["output"]
    assert not observations[1]["ok"]
    assert "Unknown tool 'teleport'" in observations[1]["output"]
    tool_messages = [m for m in world.llm.requests[-1].messages if m["role"] == "tool"]
    assert "not valid JSON" in tool_messages[0]["content"]


async def test_the_same_failing_action_repeated_stops_the_run_with_an_explanation(
    stack: AsyncExitStack, tmp_path: Path
) -> None:
    missing = {"path": "nope.py"}
    world = await world_with(
        stack, tmp_path, *(tool("read_file", missing) for _ in range(5)), loop_threshold=3
    )
    run = await world.finished((await world.start()).run_id)
    assert (run.status, run.stop_reason) == ("stopped", "loop_detected")
    assert "repeated the same failing action (read_file" in (run.message or "")
    assert run.steps == 3
    errors = [p for k, p in await world.events(run.run_id) if k == "error"]
    assert errors[-1]["code"] == "loop_detected"


async def test_max_steps_stops_the_run(stack: AsyncExitStack, tmp_path: Path) -> None:
    world = await world_with(
        stack, tmp_path, *(tool("list_files") for _ in range(10)), max_steps=10
    )
    run = await world.finished((await world.start(max_steps=2)).run_id)
    assert (run.status, run.stop_reason, run.steps) == ("stopped", "max_steps", 2)
    assert "limit of 2 steps" in (run.message or "")


async def test_the_cost_budget_stops_the_run(stack: AsyncExitStack, tmp_path: Path) -> None:
    steps = [tool("list_files", cost_usd=0.004) for _ in range(10)]
    world = await world_with(stack, tmp_path, *steps)
    run = await world.finished((await world.start(max_cost_usd=0.01)).run_id)
    assert (run.status, run.stop_reason) == ("stopped", "budget")
    assert run.steps == 3  # 0.004, 0.008, 0.012 >= 0.01
    assert "budget exceeded" in (run.message or "").lower()
    errors = [p for k, p in await world.events(run.run_id) if k == "error"]
    assert errors
    assert errors[-1]["code"] == "budget"


async def test_the_wall_time_limit_stops_a_slow_run(stack: AsyncExitStack, tmp_path: Path) -> None:
    world = await world_with(
        stack, tmp_path, *(tool("list_files") for _ in range(50)), max_wall_time_s=0.3
    )
    world.llm.delay_s = 0.1
    run = await world.finished((await world.start()).run_id)
    assert (run.status, run.stop_reason) == ("stopped", "wall_time")


async def test_cancel_stops_a_run_and_records_it(stack: AsyncExitStack, tmp_path: Path) -> None:
    world = await world_with(stack, tmp_path, *(tool("list_files") for _ in range(50)))
    world.llm.delay_s = 0.05
    started = await world.start()
    await world.until(started.run_id, lambda run: run.steps >= 1)
    await world.client.cancel(started.run_id)
    run = await world.finished(started.run_id)
    assert run.status == "cancelled"
    statuses = [p["status"] for k, p in await world.events(run.run_id) if k == "status"]
    assert statuses[-1] == "cancelled"
    # Cancelling an ended run changes nothing.
    assert (await world.client.cancel(run.run_id)).status == "cancelled"


async def test_a_second_prompt_to_the_same_workspace_waits_until_the_first_ends(
    stack: AsyncExitStack, tmp_path: Path
) -> None:
    world = await world_with(
        stack,
        tmp_path,
        tool("write_file", {"path": "a.txt", "content": "first"}),
        tool("finish", {"summary": "first done"}),
        tool("write_file", {"path": "a.txt", "content": "second"}),
        tool("finish", {"summary": "second done"}),
    )
    world.llm.delay_s = 0.05
    first = await world.start("first")
    second = await world.start("second")
    assert (await world.store.get(second.run_id)).status == "queued"
    done_first = await world.finished(first.run_id)
    done_second = await world.finished(second.run_id)
    assert done_first.message == "first done"
    assert done_second.message == "second done"
    assert done_second.started_at is not None
    assert done_first.finished_at is not None
    assert done_second.started_at >= done_first.finished_at
    _, data = await world.reader.read_file(world.workspace_id, "a.txt")
    assert data == b"second"


async def test_the_offline_demo_model_plays_a_labelled_agent_session(
    stack: AsyncExitStack, tmp_path: Path
) -> None:
    from serve_apps.llm_router.demo import DemoBackend
    from serve_apps.llm_router.router import LLMRouter
    from serve_apps.llm_router.settings import LLMSettings

    demo = LLMRouter(DemoBackend(), settings=LLMSettings(demo=True))
    world = await open_world(stack, tmp_path, ScriptedLLM(), model=demo)
    run = await world.finished((await world.start("anything at all")).run_id)

    assert run.status == "succeeded"
    assert (run.message or "").startswith("[DEMO]")
    _, data = await world.reader.read_file(world.workspace_id, "hello.py")
    assert b"Hello from the Vibecode demo!" in data
    tools = [p["tool"] for k, p in await world.events(run.run_id) if k == "action"]
    assert tools == ["write_file", "run_command", "finish"]
