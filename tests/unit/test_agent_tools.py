"""The agent's file tools against in-process workspace sessions: what the model observes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from actors.agent import AgentSettings, Toolbox
from actors.workspace import Author
from tests.harness.agent_world import AgentWorld, ScriptedLLM, open_world


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[AgentWorld]:
    async with AsyncExitStack() as stack:
        yield await open_world(stack, tmp_path, ScriptedLLM())


@pytest.fixture
def tools(world: AgentWorld) -> Toolbox:
    return Toolbox(
        writer=world.writer,
        reader=world.reader,
        workspace_id=world.workspace_id,
        author=Author(user_id=world.user_id, kind="agent", run_id="run-1"),
        settings=AgentSettings(search_max_results=3),
    )


async def call(tools: Toolbox, name: str, **args: object) -> tuple[bool, str]:
    observation = await tools.execute(name, json.dumps(args), "call-1")
    return observation.ok, observation.output


async def test_edit_file_replaces_exactly_one_match(world: AgentWorld, tools: Toolbox) -> None:
    await call(tools, "write_file", path="m.py", content="a = 1\nb = 1\nc = 2\n")
    ok, output = await call(tools, "edit_file", path="m.py", old_string="c = 2", new_string="c = 3")
    assert ok, output
    _, data = await world.reader.read_file(world.workspace_id, "m.py")
    assert data == b"a = 1\nb = 1\nc = 3\n"
    versions = await world.reader.list_versions(world.workspace_id)
    assert versions[0].author_kind == "agent"
    assert "run-1" in versions[0].message


async def test_edit_file_refuses_zero_or_several_matches(world: AgentWorld, tools: Toolbox) -> None:
    await call(tools, "write_file", path="m.py", content="x = 1\nx = 1\n")
    ok, output = await call(tools, "edit_file", path="m.py", old_string="y", new_string="z")
    assert not ok
    assert "not found" in output
    ok, output = await call(tools, "edit_file", path="m.py", old_string="x = 1", new_string="x")
    assert not ok
    assert "occurs 2 times" in output
    _, data = await world.reader.read_file(world.workspace_id, "m.py")
    assert data == b"x = 1\nx = 1\n"
    assert len(await world.reader.list_versions(world.workspace_id)) == 1


async def test_writing_the_same_content_again_makes_no_version(
    world: AgentWorld, tools: Toolbox
) -> None:
    await call(tools, "write_file", path="a.txt", content="same")
    ok, output = await call(tools, "write_file", path="a.txt", content="same")
    assert ok
    assert "unchanged" in output
    assert len(await world.reader.list_versions(world.workspace_id)) == 1


async def test_read_file_by_line_range_and_missing_files(tools: Toolbox) -> None:
    await call(
        tools, "write_file", path="n.txt", content="".join(f"line {i}\n" for i in range(1, 11))
    )
    ok, output = await call(tools, "read_file", path="n.txt", start_line=3, end_line=4)
    assert ok
    assert output.splitlines() == ["n.txt (lines 3-4 of 10)", "line 3", "line 4"]
    ok, output = await call(tools, "read_file", path="missing.txt")
    assert not ok
    assert output.startswith("Error:")
    ok, output = await call(tools, "read_file", path="../etc/passwd")
    assert not ok


async def test_search_by_substring_and_regex_is_bounded(tools: Toolbox) -> None:
    await call(tools, "write_file", path="src/a.py", content="def f():\n    return 1\n")
    await call(tools, "write_file", path="b.py", content="def g(): pass\nfoo\nfoo\nfoo\nfoo\n")
    ok, output = await call(tools, "search", query="def ", path="src")
    assert ok
    assert output == "src/a.py:1: def f():"
    ok, output = await call(tools, "search", query=r"def \w\(", regex=True)
    assert ok
    assert set(output.splitlines()) == {"b.py:1: def g(): pass", "src/a.py:1: def f():"}
    ok, output = await call(tools, "search", query="foo")
    assert ok
    assert output.splitlines()[-1] == "[... stopped at 3 matches]"
    ok, output = await call(tools, "search", query="(", regex=True)
    assert not ok
    assert "Invalid regular expression" in output


async def test_list_files(tools: Toolbox) -> None:
    await call(tools, "write_file", path="src/a.py", content="1")
    await call(tools, "write_file", path="b.py", content="22")
    ok, output = await call(tools, "list_files")
    assert ok
    assert output.splitlines() == ["b.py (2 bytes)", "src/a.py (1 bytes)"]
    ok, output = await call(tools, "list_files", path="src")
    assert output == "src/a.py (1 bytes)"
