"""Agent runs through the gateway (TestClient) on both databases, with the scripted OpenAI
server reached through litellm exactly as in production, and commands in a real sandbox."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from actors.agent.settings import AgentSettings
from serve_apps.gateway.app import build_app
from tests.harness.fake_openai import FakeOpenAI, Reply
from tests.integration import llm_fixtures
from tests.integration.gateway_client import bearer, register_and_login
from tests.integration.llm_fixtures import FAST_RETRIES, model_config
from tests.integration.sandbox_gateway import sandbox_gateway_config

fake_openai_server = llm_fixtures.fake_openai_server
fake_openai = llm_fixtures.fake_openai

HELLO = "print('hello from the agent')\n"


@pytest.fixture
def client(db_url: str, tmp_path: Path, fake_openai: FakeOpenAI) -> Iterator[TestClient]:
    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump(model_config(fake_openai)))
    config = sandbox_gateway_config(db_url, tmp_path).model_copy(
        update={
            "llm": FAST_RETRIES.model_copy(update={"config_path": models}),
            "agent": AgentSettings(poll_interval_s=0.02, execute_timeout_s=60),
        }
    )
    with TestClient(build_app(config), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def token(client: TestClient) -> str:
    return register_and_login(client)["access_token"]


@pytest.fixture
def workspace(client: TestClient, token: str) -> str:
    created = client.post("/api/workspaces", json={"name": "agent"}, headers=bearer(token))
    assert created.status_code == 201, created.text
    workspace_id: str = created.json()["id"]
    return workspace_id


def script_hello(server: FakeOpenAI, **options: Any) -> None:
    server.script.add(
        "fast",
        Reply.tool_call("write_file", {"path": "hello.py", "content": HELLO}, **options),
        Reply.tool_call("run_command", {"command": "python3 hello.py"}, **options),
        Reply.tool_call("finish", {"summary": "Created hello.py and ran it."}, **options),
    )


def run_of(client: TestClient, token: str, run_id: str) -> dict[str, Any]:
    response = client.get(f"/api/agent/runs/{run_id}", headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_for(client: TestClient, token: str, run_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run = run_of(client, token, run_id)
        if run["status"] in statuses:
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never reached {statuses}: {run}")


def events_of(client: TestClient, token: str, run_id: str, after: int = 0) -> list[dict[str, Any]]:
    response = client.get(f"/api/agent/runs/{run_id}/events?after={after}", headers=bearer(token))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_execute_writes_runs_and_reports_what_changed(
    client: TestClient, token: str, workspace: str, fake_openai: FakeOpenAI
) -> None:
    script_hello(fake_openai)
    response = client.post(
        "/api/ai/execute",
        json={"workspace_id": workspace, "prompt": "write hello.py and run it"},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "run_id", "status", "message", "files_changed", "executions", "usage"
    }  # fmt: skip
    assert body["status"] == "succeeded"
    assert body["message"] == "Created hello.py and ran it."
    assert body["files_changed"] == ["hello.py"]
    assert body["executions"] == [
        {
            "command": "python3 hello.py",
            "exit_code": 0,
            "stdout": "hello from the agent\n",
            "stderr": "",
        }
    ]
    assert body["usage"]["model_calls"] == 3
    assert body["usage"]["total_tokens"] > 0
    assert body["usage"]["cost_usd"] > 0

    # The file is a version authored by the agent, and the model saw the command's output.
    got = client.get(f"/api/workspaces/{workspace}/files/hello.py", headers=bearer(token))
    assert got.content == HELLO.encode()
    versions = client.get(f"/api/workspaces/{workspace}/versions", headers=bearer(token))
    newest = versions.json()["items"][0]  # the template's files are version 1
    assert (newest["version"], newest["author"]["kind"]) == (2, "agent")
    last = fake_openai.requests[-1].messages
    assert "hello from the agent" in last[-1]["content"]

    # The log: ordered by seq, the action written before its observation.
    events = events_of(client, token, body["run_id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "status"
    assert kinds[-1] == "status"
    assert events[-1]["payload"]["status"] == "succeeded"
    command = next(
        e for e in events if e["kind"] == "action" and e["payload"]["tool"] == "run_command"
    )
    result = next(
        e
        for e in events
        if e["kind"] == "observation"
        and e["payload"]["tool_call_id"] == command["payload"]["tool_call_id"]
    )
    assert command["seq"] < result["seq"]
    assert result["payload"]["data"]["stdout"] == "hello from the agent\n"
    assert "usage" in kinds
    page = events_of(client, token, body["run_id"], after=3)
    assert page[0]["seq"] == 4

    run = run_of(client, token, body["run_id"])
    assert run["workspace_id"] == workspace
    assert run["steps"] == 3
    assert run["finished_at"] is not None


def test_runs_are_private_to_members_and_keys_need_the_ai_scope(
    client: TestClient, token: str, workspace: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script.add("fast", Reply.text("Nothing to change."))
    started = client.post(
        f"/api/workspaces/{workspace}/agent/runs", json={"prompt": "hi"}, headers=bearer(token)
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    wait_for(client, token, run_id, "succeeded")

    other = register_and_login(client, email="eve@example.com")["access_token"]
    for method, path in [
        ("GET", f"/api/agent/runs/{run_id}"),
        ("GET", f"/api/agent/runs/{run_id}/events"),
        ("POST", f"/api/agent/runs/{run_id}/cancel"),
        ("POST", f"/api/workspaces/{workspace}/agent/runs"),
    ]:
        response = client.request(method, path, json={"prompt": "x"}, headers=bearer(other))
        assert response.status_code == 404, (path, response.text)
    missing = client.get("/api/agent/runs/nope", headers=bearer(token))
    assert missing.status_code == 404

    key = client.post(
        "/api/auth/api-keys",
        json={"name": "files only", "scopes": ["workspaces:write"]},
        headers=bearer(token),
    ).json()["key"]
    refused = client.post(
        "/api/ai/execute", json={"workspace_id": workspace, "prompt": "x"}, headers=bearer(key)
    )
    assert refused.status_code == 403


def test_the_sse_stream_delivers_events_as_they_happen_and_resumes(
    client: TestClient, token: str, workspace: str, fake_openai: FakeOpenAI
) -> None:
    script_hello(fake_openai, delay_s=0.3)
    run_id = client.post(
        f"/api/workspaces/{workspace}/agent/runs", json={"prompt": "go"}, headers=bearer(token)
    ).json()["run_id"]

    seen: list[tuple[int, str]] = []
    status_at_first_event = None
    with client.stream(
        "GET", f"/api/agent/runs/{run_id}/events/stream", headers=bearer(token)
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        event_id, kind = 0, ""
        for line in stream.iter_lines():
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                if kind == "end":
                    assert json.loads(line[6:]) == {"status": "succeeded"}
                    break
                assert json.loads(line[6:])["seq"] == event_id
                seen.append((event_id, kind))
                if status_at_first_event is None:
                    status_at_first_event = run_of(client, token, run_id)["status"]
    assert status_at_first_event in ("queued", "running")  # streamed while the run went on
    assert [seq for seq, _ in seen] == list(range(1, len(seen) + 1))
    assert seen[-1][1] == "status"

    # Reconnecting with Last-Event-ID continues after it; Accept negotiates SSE on /events.
    headers = {**bearer(token), "Last-Event-ID": "3", "Accept": "text/event-stream"}
    with client.stream("GET", f"/api/agent/runs/{run_id}/events", headers=headers) as stream:
        ids = [int(line[4:]) for line in stream.iter_lines() if line.startswith("id: ")]
    assert ids == [seq for seq, _ in seen if seq > 3]


def test_cancel_stops_a_running_agent(
    client: TestClient, token: str, workspace: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script.add(
        "fast", *(Reply.tool_call("list_files", {}, delay_s=0.2) for _ in range(30))
    )
    run_id = client.post(
        f"/api/workspaces/{workspace}/agent/runs", json={"prompt": "go"}, headers=bearer(token)
    ).json()["run_id"]
    deadline = time.monotonic() + 20
    while run_of(client, token, run_id)["steps"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    cancelled = client.post(f"/api/agent/runs/{run_id}/cancel", headers=bearer(token))
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] in ("cancelling", "cancelled")
    run = wait_for(client, token, run_id, "cancelled", "succeeded", "failed", "stopped")
    assert run["status"] == "cancelled"
    assert run["steps"] < 30
    assert events_of(client, token, run_id)[-1]["payload"]["status"] == "cancelled"


def test_cancel_stops_a_command_the_agent_is_running(
    client: TestClient, token: str, workspace: str, fake_openai: FakeOpenAI
) -> None:
    slow = "sleep 2 && echo late > late.txt"
    fake_openai.script.add("fast", Reply.tool_call("run_command", {"command": slow}))
    run_id = client.post(
        f"/api/workspaces/{workspace}/agent/runs", json={"prompt": "go"}, headers=bearer(token)
    ).json()["run_id"]
    deadline = time.monotonic() + 20
    while not any(e["kind"] == "action" for e in events_of(client, token, run_id)):
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.02)
    time.sleep(0.3)  # the command is running in the sandbox now
    cancelled_at = time.monotonic()
    client.post(f"/api/agent/runs/{run_id}/cancel", headers=bearer(token))
    run = wait_for(client, token, run_id, "cancelled", "succeeded", "failed", "stopped")
    assert run["status"] == "cancelled"
    assert time.monotonic() - cancelled_at < 1.5  # it did not wait for the command
    observation = next(e for e in events_of(client, token, run_id) if e["kind"] == "observation")
    assert observation["payload"]["output"] == "Cancelled by the user."

    # The command was stopped: it never wrote its file, even after it would have finished.
    time.sleep(2.5)
    check = client.post(
        f"/api/workspaces/{workspace}/exec",
        json={"command": "test -e late.txt"},
        headers=bearer(token),
    )
    assert check.status_code == 200, check.text
    assert check.json()["exit_code"] == 1


def test_a_spent_budget_stops_the_run_with_a_clear_error(
    client: TestClient, token: str, workspace: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script.add(
        "fast", *(Reply.tool_call("list_files", {}, prompt_tokens=1000) for _ in range(10))
    )
    run_id = client.post(
        f"/api/workspaces/{workspace}/agent/runs",
        json={"prompt": "go", "max_cost_usd": 0.002},
        headers=bearer(token),
    ).json()["run_id"]
    run = wait_for(client, token, run_id, "stopped", "succeeded", "failed")
    assert (run["status"], run["stop_reason"]) == ("stopped", "budget")
    assert "budget" in run["message"].lower()
    assert 0.002 <= run["usage"]["cost_usd"] < 0.004
    errors = [e for e in events_of(client, token, run_id) if e["kind"] == "error"]
    assert errors[-1]["payload"]["code"] == "budget"


def test_a_second_prompt_to_the_same_workspace_is_queued_until_the_first_ends(
    client: TestClient, token: str, workspace: str, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script.add(
        "fast",
        Reply.tool_call("write_file", {"path": "a.txt", "content": "one"}, delay_s=0.3),
        Reply.tool_call("finish", {"summary": "first"}, delay_s=0.3),
        Reply.tool_call("write_file", {"path": "a.txt", "content": "two"}),
        Reply.tool_call("finish", {"summary": "second"}),
    )
    runs = f"/api/workspaces/{workspace}/agent/runs"
    first = client.post(runs, json={"prompt": "one"}, headers=bearer(token)).json()["run_id"]
    second = client.post(runs, json={"prompt": "two"}, headers=bearer(token))
    assert second.json()["status"] == "queued"
    second_id = second.json()["run_id"]
    assert run_of(client, token, second_id)["status"] == "queued"

    done_first = wait_for(client, token, first, "succeeded")
    done_second = wait_for(client, token, second_id, "succeeded")
    assert done_second["started_at"] >= done_first["finished_at"]
    got = client.get(f"/api/workspaces/{workspace}/files/a.txt", headers=bearer(token))
    assert got.content == b"two"
    listed = client.get(runs, headers=bearer(token)).json()["items"]
    assert [r["run_id"] for r in listed] == [second_id, first]
