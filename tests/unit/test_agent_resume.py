"""Resuming a run from its log: finished tool calls are never repeated; an interrupted one is
re-run when idempotent, and reported as interrupted when it is a command."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from actors.agent import RunRequest, run_limits
from actors.workspace import Author
from tests.harness.agent_world import AgentWorld, ScriptedLLM, open_world, tool


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[AgentWorld]:
    async with AsyncExitStack() as stack:
        yield await open_world(stack, tmp_path, ScriptedLLM())


def call(call_id: str, name: str, **args: object) -> dict[str, str]:
    return {"id": call_id, "name": name, "arguments": json.dumps(args)}


async def interrupted_run(world: AgentWorld, calls: list[dict[str, str]], done: set[str]) -> str:
    """A run whose host died after logging the actions of ``calls``; those in ``done`` have
    their observation logged too."""
    request = RunRequest(workspace_id=world.workspace_id, user_id=world.user_id, prompt="task")
    run = await world.store.create(request, limits=run_limits(request, world.host.settings))
    await world.store.update(run.run_id, status="running", started=True)
    log: list[tuple[str, dict[str, Any]]] = [
        ("status", {"status": "running", "host": "agent-local"}),
        ("message", {"role": "user", "content": "task"}),
        ("usage", {"model": "fake", "prompt_tokens": 10, "completion_tokens": 5, "cost_usd": 0}),
        ("message", {"role": "assistant", "content": None, "tool_calls": calls}),
    ]
    for c in calls:
        action = {"tool_call_id": c["id"], "tool": c["name"], "arguments": c["arguments"]}
        log.append(("action", action))
        if c["id"] in done:
            log.append(
                ("observation", {"tool_call_id": c["id"], "tool": c["name"], "ok": True,
                                 "output": "done before the host died", "data": {}})
            )  # fmt: skip
    for seq, (kind, payload) in enumerate(log, 1):
        await world.store.append(run.run_id, seq, kind, payload)
    await world.store.set_host(run.run_id, world.host.name)
    return run.run_id


async def test_a_resumed_run_skips_finished_calls_and_reruns_idempotent_ones(
    world: AgentWorld,
) -> None:
    # "b.txt" was observed as written (it is not in the workspace: re-running would create it);
    # "a.txt" was being written when the host died (its write did land).
    author = Author(user_id=world.user_id, kind="agent", run_id="r")
    await world.writer.write_file(world.workspace_id, "a.txt", b"A", if_match=None, author=author)
    calls = [
        call("c1", "write_file", path="b.txt", content="B"),
        call("c2", "write_file", path="a.txt", content="A"),
    ]
    run_id = await interrupted_run(world, calls, done={"c1"})
    world.llm.steps.append(tool("finish", {"summary": "resumed and done"}))

    assert await world.host.start() == [run_id]
    run = await world.finished(run_id)

    assert (run.status, run.message) == ("succeeded", "resumed and done")
    files = {f.path for f in await world.reader.list_files(world.workspace_id)}
    assert files == {"a.txt"}  # c1 was not executed again
    assert len(await world.reader.list_versions(world.workspace_id)) == 1  # same bytes: no version
    events = await world.store.all_events(run_id)
    observed = [e.payload["tool_call_id"] for e in events if e.kind == "observation"]
    assert observed[:2] == ["c1", "c2"]
    assert len(observed) == 3
    statuses = [e.payload for e in events if e.kind == "status"]
    assert statuses[1] == {"status": "running", "host": "agent-local", "resumed": True}
    # The model saw one result per call: the conversation was rebuilt, not repeated.
    sent = world.llm.requests[0].messages
    assert [m["tool_call_id"] for m in sent if m["role"] == "tool"] == ["c1", "c2"]


async def test_a_command_interrupted_by_a_dead_host_is_reported_not_rerun(
    world: AgentWorld,
) -> None:
    run_id = await interrupted_run(world, [call("c1", "run_command", command="make deploy")], set())
    world.llm.steps.append(tool("finish", {"summary": "checked"}))
    await world.host.start()
    run = await world.finished(run_id)

    assert run.status == "succeeded"
    observation = next(e for e in await world.store.all_events(run_id) if e.kind == "observation")
    assert observation.payload["data"] == {"interrupted": True}
    assert observation.payload["output"].startswith("Interrupted:")
    assert run.executions == ()  # nothing ran


async def test_a_run_whose_log_already_ended_is_only_closed(world: AgentWorld) -> None:
    run_id = await interrupted_run(world, [call("c1", "finish", summary="all done")], {"c1"})
    # The finish observation is logged (with its summary in data) but the host died before
    # recording the status: resuming ends the run without calling the model.
    events = await world.store.all_events(run_id)
    await world.store.append(
        run_id,
        events[-1].seq + 1,
        "status",
        {"status": "succeeded", "reason": None, "message": "all done"},
    )
    await world.host.start()
    run = await world.finished(run_id)
    assert (run.status, run.message) == ("succeeded", "all done")
    assert world.llm.requests == []
