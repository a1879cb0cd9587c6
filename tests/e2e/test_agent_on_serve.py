"""The coding agent end to end: HTTP into the deployed platform (Serve, WorkspaceHost, AgentHost
and SandboxPool actors on real Ray), the model reached through litellm at a scripted
OpenAI-compatible server on loopback, and commands in the real bubblewrap sandbox.

The scenario a user would try first: "create a small Python package with a function and a
test, run the tests, fix the failure, finish".
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sandbox.bubblewrap import unavailable_reason
from sandbox.settings import BubblewrapSettings
from tests.contract.sandbox_backends import CGROUP_NAME, STATE_DIR
from tests.harness.fake_openai import FakeOpenAI, Reply
from tests.harness.platform import vibecode

pytestmark = pytest.mark.ray

CREDS = {"email": "ada@example.com", "password": "a long enough password"}
SANDBOX_STATE_DIR = STATE_DIR / "e2e-agent"

BUGGY = "def add(a, b):\n    return a - b\n"
FIXED = "def add(a, b):\n    return a + b\n"
TEST = (
    "import unittest\n"
    "\n"
    "from pkg import add\n"
    "\n"
    "\n"
    "class AddTest(unittest.TestCase):\n"
    "    def test_add(self):\n"
    "        self.assertEqual(add(2, 3), 5)\n"
)
TEST_COMMAND = "python3 -m unittest discover -s tests -t ."
SUMMARY = "Created pkg.add with a unit test, fixed the subtraction bug; the tests pass."
SOURCES = ["pkg/__init__.py", "tests/__init__.py", "tests/test_pkg.py"]


@pytest.fixture(scope="session")
def model_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def agent_platform(
    shared_platform_env: dict[str, str],
    serve_port: int,
    model_server: FakeOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """Deploy once per backend with the scripted model configured and a bubblewrap sandbox."""
    reason = unavailable_reason(BubblewrapSettings())
    if reason is not None:
        pytest.skip(f"bubblewrap: {reason}")
    models = tmp_path_factory.mktemp("llm") / "models.yaml"
    models.write_text(yaml.safe_dump({"model_list": [model_server.model_entry("coder")]}))
    env = {
        **shared_platform_env,
        "VIBECODE_LLM_CONFIG": str(models),
        "VIBECODE_LLM__NUM_RETRIES": "0",
        "VIBECODE_AGENT__POLL_INTERVAL_S": "0.05",
        "VIBECODE_SANDBOX__POOL_SIZE": "1",
        "VIBECODE_SANDBOX__BACKEND__KIND": "bubblewrap",
        "VIBECODE_SANDBOX__BACKEND__STATE_DIR": str(SANDBOX_STATE_DIR),
        "VIBECODE_SANDBOX__BACKEND__CGROUP_NAME": CGROUP_NAME,
    }
    started = vibecode("up", "--detach", env=env)
    assert started.returncode == 0, started.stderr
    assert f"AI models: from {models}" in started.stdout, started.stdout
    try:
        yield f"http://127.0.0.1:{serve_port}"
    finally:
        _stop_pools_and_slots(SANDBOX_STATE_DIR)


def _stop_pools_and_slots(state_dir: Path) -> None:
    """A killed pool actor cannot unmount its slots: do it for it (as its __aexit__ would)."""
    from actors.sandbox_pool.actor import stop_pools
    from sandbox.mounts import remove_slot

    stop_pools("vibecode")
    time.sleep(0.5)  # bwrap dies with its parent; the slots are then unused.
    for sandbox_dir in state_dir.glob("sbx-*") if state_dir.is_dir() else ():
        remove_slot(sandbox_dir)


def script_package_session(server: FakeOpenAI, prompt: str) -> None:
    """What the model does when asked ``prompt``: write, test (fails), fix, test (passes)."""
    server.script.on_message(
        prompt,
        Reply.tool_call("write_file", {"path": "pkg/__init__.py", "content": BUGGY}),
        Reply.tool_call("write_file", {"path": "tests/__init__.py", "content": ""}),
        Reply.tool_call("write_file", {"path": "tests/test_pkg.py", "content": TEST}),
        Reply.tool_call("run_command", {"command": TEST_COMMAND}),
        Reply.tool_call(
            "edit_file",
            {"path": "pkg/__init__.py", "old_string": "a - b", "new_string": "a + b"},
        ),
        Reply.tool_call("run_command", {"command": TEST_COMMAND}),
        Reply.tool_call("finish", {"summary": SUMMARY}),
        model="coder",
    )


def sign_in(http: httpx.Client) -> dict[str, str]:
    http.post("/api/auth/register", json=CREDS)
    tokens = http.post("/api/auth/login", json=CREDS).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def new_workspace(http: httpx.Client, name: str) -> str:
    created = http.post("/api/workspaces", json={"name": name})
    assert created.status_code == 201, created.text
    workspace_id: str = created.json()["id"]
    return workspace_id


def events_of(http: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    response = http.get(f"/api/agent/runs/{run_id}/events", params={"after": 0})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def command_outputs(events: list[dict[str, Any]]) -> list[str]:
    """What the model read back from each ``run_command``, in order."""
    return [
        e["payload"]["output"]
        for e in events
        if e["kind"] == "observation" and e["payload"]["tool"] == "run_command"
    ]


def assert_agent_left_the_fix(http: httpx.Client, workspace: str, run_id: str) -> None:
    """The sources read back with the fix, and each agent step is a version a user can undo."""
    base = f"/api/workspaces/{workspace}"
    assert http.get(f"{base}/files/pkg/__init__.py").content == FIXED.encode()
    assert http.get(f"{base}/files/tests/test_pkg.py").content == TEST.encode()
    versions = http.get(f"{base}/versions").json()["items"]
    # Newest first: the three writes and the edit, each its own version, over the creation.
    assert [v["author"]["kind"] for v in versions] == ["agent"] * 4 + ["user"], versions
    assert all(run_id in v["message"] for v in versions[:4]), versions
    listed = {f["path"] for f in http.get(f"{base}/files").json()["items"]}
    assert set(SOURCES) <= listed, listed
    assert not any("__pycache__" in path for path in listed), listed


def test_agent_writes_a_package_fixes_its_failing_test_and_finishes(
    agent_platform: str, model_server: FakeOpenAI
) -> None:
    already = len(model_server.requests)  # the server is the session's
    with httpx.Client(base_url=agent_platform, timeout=120) as http:
        http.headers.update(sign_in(http))

        # One-shot: the response says what changed and what ran.
        first = new_workspace(http, "one-shot")
        prompt = f"Create a Python package pkg with add(a, b) and a unit test ({first})"
        script_package_session(model_server, prompt)
        executed = http.post("/api/ai/execute", json={"workspace_id": first, "prompt": prompt})
        assert executed.status_code == 200, executed.text
        body = executed.json()
        assert (body["status"], body["message"]) == ("succeeded", SUMMARY), body
        assert body["files_changed"] == SOURCES, body["files_changed"]
        assert [e["command"] for e in body["executions"]] == [TEST_COMMAND, TEST_COMMAND]
        failed, passed = body["executions"]
        assert failed["exit_code"] == 1, failed
        assert "FAILED (failures=1)" in failed["stderr"], failed
        assert passed["exit_code"] == 0, passed
        assert passed["stderr"].endswith("\nOK\n"), passed
        assert body["usage"]["model_calls"] == 7
        assert_agent_left_the_fix(http, first, body["run_id"])
        outputs = command_outputs(events_of(http, body["run_id"]))
        assert len(outputs) == 2, outputs
        assert "FAILED" in outputs[0], outputs
        assert "\nOK" in outputs[1], outputs

        # Started in the background, followed through the event log.
        second = new_workspace(http, "background")
        prompt = f"Create a Python package pkg with add(a, b) and a unit test ({second})"
        script_package_session(model_server, prompt)
        started = http.post(f"/api/workspaces/{second}/agent/runs", json={"prompt": prompt})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        deadline = time.monotonic() + 90
        run = http.get(f"/api/agent/runs/{run_id}").json()
        while run["status"] not in ("succeeded", "failed", "stopped", "cancelled"):
            assert time.monotonic() < deadline, run
            time.sleep(0.2)
            run = http.get(f"/api/agent/runs/{run_id}").json()
        assert (run["status"], run["message"], run["steps"]) == ("succeeded", SUMMARY, 7), run
        assert run["files_changed"] == SOURCES, run

        events = events_of(http, run_id)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        tools = [e["payload"]["tool"] for e in events if e["kind"] == "action"]
        assert tools == [
            "write_file", "write_file", "write_file", "run_command",
            "edit_file", "run_command", "finish",
        ]  # fmt: skip
        failing, passing = command_outputs(events)
        assert failing.startswith("exit_code: 1"), failing
        assert "FAILED (failures=1)" in failing, failing
        assert "AssertionError: -1 != 5" in failing, failing
        assert passing.startswith("exit_code: 0"), passing
        assert "\nOK" in passing, passing
        assert events[-1]["kind"] == "status"
        assert events[-1]["payload"]["status"] == "succeeded"
        assert_agent_left_the_fix(http, second, run_id)

    # Every call went through litellm to the scripted server, with the tools offered.
    calls = model_server.requests[already:]
    assert [r.model for r in calls] == ["coder"] * 14
    offered = {tool["function"]["name"] for tool in calls[0].body["tools"]}
    assert {"write_file", "edit_file", "run_command", "finish"} <= offered
