"""Commands, processes, streaming and the terminal through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from serve_apps.gateway.services import Services
from tests.integration.gateway_client import (
    assert_problem,
    bearer,
    gateway_config,
    register_and_login,
    running_gateway,
)
from tests.integration.sandbox_gateway import sandbox_gateway_config


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    config = sandbox_gateway_config(db_url, tmp_path, max_workspace_bytes=256 * 1024)
    with running_gateway(config) as test_client:
        yield test_client


@pytest.fixture
def ada(client: TestClient) -> dict[str, str]:
    return bearer(register_and_login(client)["access_token"])


def workspace(client: TestClient, auth: dict[str, str], template: str = "python") -> str:
    created = client.post(
        "/api/workspaces", json={"name": "runner", "template": template}, headers=auth
    )
    assert created.status_code == 201, created.text
    ws: str = created.json()["id"]
    return ws


def run(client: TestClient, auth: dict[str, str], ws: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/api/workspaces/{ws}/exec", json=body, headers=auth)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_exec_runs_the_templates_tests_and_versions_written_files(
    client: TestClient, ada: dict[str, str]
) -> None:
    ws = workspace(client, ada)
    tests = run(client, ada, ws, command=["python3", "-m", "unittest", "-v"])
    assert tests["exit_code"] == 0, tests["stderr"]
    assert "OK" in tests["stderr"]
    assert tests["version"] is None
    assert tests["files_changed"] == []
    for key in ("duration_ms", "timed_out", "truncated", "cpu_s", "max_rss_bytes"):
        assert key in tests

    made = run(
        client,
        ada,
        ws,
        command="mkdir -p out && printf 'built\\n' > out/a.txt && rm README.md && pwd",
    )
    assert made["stdout"] == "/workspace\n"
    assert made["files_changed"] == ["README.md", "out/a.txt"]
    assert made["version"] == 2
    assert client.get(f"/api/workspaces/{ws}/files/out/a.txt", headers=ada).content == b"built\n"
    assert client.get(f"/api/workspaces/{ws}/files/README.md", headers=ada).status_code == 404
    top = client.get(f"/api/workspaces/{ws}/versions", headers=ada).json()["items"][0]
    assert top["version"] == 2
    assert top["message"].startswith("exec: mkdir -p out")
    # A file written through the files API is what the next command sees.
    client.put(f"/api/workspaces/{ws}/files/in.txt", content=b"from the API", headers=ada)
    assert run(client, ada, ws, command="cat in.txt")["stdout"] == "from the API"


def test_a_script_made_executable_by_a_command_runs_after_the_tree_is_rebuilt(
    client: TestClient, ada: dict[str, str], tmp_path: Path
) -> None:
    ws = workspace(client, ada, "blank")
    made = run(client, ada, ws, command="printf '#!/bin/sh\\necho ran\\n' > run.sh")
    assert made["files_changed"] == ["run.sh"]
    made = run(client, ada, ws, command="chmod +x run.sh")
    assert made["files_changed"] == ["run.sh"]  # The mode alone is a change.
    listing = client.get(f"/api/workspaces/{ws}/files", headers=ada).json()["items"]
    assert {item["path"]: item["executable"] for item in listing} == {
        "README.md": False,
        "run.sh": True,
    }
    # The session unloads and its working tree is lost: the next command runs on a tree
    # rebuilt from durable state.
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    client.portal.call(services.writer.close, ws)
    shutil.rmtree(tmp_path / "trees" / ws)
    ran = run(client, ada, ws, command="./run.sh")
    assert (ran["exit_code"], ran["stdout"]) == (0, "ran\n"), ran["stderr"]


def test_failures_timeouts_and_quota_are_answers(client: TestClient, ada: dict[str, str]) -> None:
    ws = workspace(client, ada, "blank")
    failed = run(client, ada, ws, command="echo oops >&2; exit 3", stdin="")
    assert (failed["exit_code"], failed["stderr"]) == (3, "oops\n")
    fed = run(client, ada, ws, command=["cat"], stdin="piped in")
    assert fed["stdout"] == "piped in"
    slow = run(client, ada, ws, command="sleep 5", timeout_s=0.5)
    assert slow["timed_out"] is True
    assert slow["duration_ms"] < 3000
    big = run(client, ada, ws, command="head -c 300000 /dev/zero > big.bin")
    assert big["version"] is None
    assert big["sync_refused"]
    assert "limit" in big["sync_refused"]
    assert "big.bin" not in {
        f["path"] for f in client.get(f"/api/workspaces/{ws}/files", headers=ada).json()["items"]
    }
    # Once the file is gone again, later commands version normally.
    assert run(client, ada, ws, command="rm big.bin; echo x > x.txt")["files_changed"] == ["x.txt"]
    invalid = client.post(f"/api/workspaces/{ws}/exec", json={"command": []}, headers=ada)
    assert_problem(invalid, 422)
    escaping = client.post(
        f"/api/workspaces/{ws}/exec", json={"command": "true", "cwd": "../etc"}, headers=ada
    )
    assert_problem(escaping, 422)


def test_stream_yields_output_before_the_result(client: TestClient, ada: dict[str, str]) -> None:
    ws = workspace(client, ada, "blank")
    body = {"command": "echo one; sleep 0.3; echo two >&2; echo three > f.txt"}
    events: list[tuple[str, dict[str, Any]]] = []
    with client.stream(
        "POST", f"/api/workspaces/{ws}/exec/stream", json=body, headers=ada
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: ") :])))
    assert [name for name, _ in events] == ["output", "output", "result"]
    assert events[0][1] == {"stream": "stdout", "text": "one\n"}
    assert events[1][1] == {"stream": "stderr", "text": "two\n"}
    result = events[2][1]
    assert (result["exit_code"], result["stdout"], result["files_changed"]) == (
        0,
        "one\n",
        ["f.txt"],
    )


def test_processes_start_list_logs_kill_and_idempotent_token(
    client: TestClient, ada: dict[str, str]
) -> None:
    ws = workspace(client, ada, "blank")
    base = f"/api/workspaces/{ws}/processes"
    body = {"command": "echo started; echo data > made.txt; sleep 60", "client_token": "dev-1"}
    started = client.post(base, json=body, headers=ada)
    assert started.status_code == 201, started.text
    process = started.json()
    assert process["running"] is True
    assert process["started_at"]
    again = client.post(base, json=body, headers=ada)
    assert again.status_code == 201
    assert again.json()["id"] == process["id"]  # Same token, same process.
    assert [p["id"] for p in client.get(base, headers=ada).json()["items"]] == [process["id"]]

    logs: dict[str, Any] = {"data": ""}
    deadline = time.monotonic() + 5
    while "started" not in logs["data"] and time.monotonic() < deadline:
        logs = client.get(f"{base}/{process['id']}/logs", headers=ada).json()
    assert logs["data"] == "started\n"
    assert logs["running"] is True
    later = client.get(f"{base}/{process['id']}/logs?offset={logs['next_offset']}", headers=ada)
    assert later.json()["data"] == ""
    # While the process runs, commands share its sandbox.
    assert run(client, ada, ws, command="cat made.txt")["stdout"] == "data\n"

    killed = client.delete(f"{base}/{process['id']}", headers=ada)
    assert killed.status_code == 204
    assert not any(p["running"] for p in client.get(base, headers=ada).json()["items"])
    # Once nothing runs, a sync gives the sandbox back; the process is then gone.
    assert client.post(f"/api/workspaces/{ws}/sync", headers=ada).status_code == 200
    assert client.get(base, headers=ada).json()["items"] == []
    assert_problem(client.get(f"{base}/{process['id']}/logs", headers=ada), 404)
    assert_problem(client.delete(f"{base}/nope", headers=ada), 404)
    files = client.get(f"/api/workspaces/{ws}/files", headers=ada).json()["items"]
    assert "made.txt" in {f["path"] for f in files}


def test_terminal_echoes_a_commands_output(client: TestClient, ada: dict[str, str]) -> None:
    ws = workspace(client, ada, "blank")
    token = ada["Authorization"].removeprefix("Bearer ")
    with client.websocket_connect(f"/api/workspaces/{ws}/terminal?token={token}") as terminal:
        terminal.send_text(json.dumps({"type": "resize", "cols": 100, "rows": 30}))
        terminal.send_bytes(b"echo term-$((6*7)); stty size\n")
        seen = b""
        while b"term-42" not in seen or b"30 100" not in seen:
            seen += terminal.receive_bytes()
    url = f"/api/workspaces/{ws}/terminal?token=bad"
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(url) as terminal:
        terminal.receive_bytes()
    assert refused.value.code == 4401


def _read_until(terminal: Any, marker: bytes) -> None:
    seen = b""
    while marker not in seen:
        seen += terminal.receive_bytes()


def _keep_typing(terminal: Any, for_s: float) -> None:
    deadline = time.monotonic() + for_s
    while time.monotonic() < deadline:
        terminal.send_bytes(b"echo tick\n")
        terminal.receive_bytes()


def test_a_removed_member_loses_an_open_terminal_within_seconds(
    client: TestClient, ada: dict[str, str]
) -> None:
    ws = workspace(client, ada, "blank")
    bob = bearer(register_and_login(client, "bob@example.com")["access_token"])
    bob_id = client.get("/api/auth/me", headers=bob).json()["id"]
    invited = client.put(
        f"/api/workspaces/{ws}/members",
        json={"email": "bob@example.com", "role": "editor"},
        headers=ada,
    )
    assert invited.status_code in (200, 201), invited.text
    url = f"/api/workspaces/{ws}/terminal?token="
    ada_url = url + ada["Authorization"].removeprefix("Bearer ")
    bob_url = url + bob["Authorization"].removeprefix("Bearer ")
    with client.websocket_connect(ada_url) as kept, client.websocket_connect(bob_url) as removed:
        removed.send_bytes(b"echo bob-$((6*7))\n")
        _read_until(removed, b"bob-42")
        gone = client.delete(f"/api/workspaces/{ws}/members/{bob_id}", headers=ada)
        assert gone.status_code == 204, gone.text

        with pytest.raises(WebSocketDisconnect) as closed:
            _keep_typing(removed, for_s=10)
        assert closed.value.code == 4403
        kept.send_bytes(b"echo ada-$((6*7))\n")
        _read_until(kept, b"ada-42")


def test_viewers_get_403_and_strangers_404(client: TestClient, ada: dict[str, str]) -> None:
    ws = workspace(client, ada, "blank")
    bob = bearer(register_and_login(client, "bob@example.com")["access_token"])
    assert_problem(
        client.post(f"/api/workspaces/{ws}/exec", json={"command": "id"}, headers=bob), 404
    )
    assert_problem(client.get(f"/api/workspaces/{ws}/processes", headers=bob), 404)
    invited = client.put(
        f"/api/workspaces/{ws}/members",
        json={"email": "bob@example.com", "role": "viewer"},
        headers=ada,
    )
    assert invited.status_code in (200, 201), invited.text
    assert_problem(
        client.post(f"/api/workspaces/{ws}/exec", json={"command": "id"}, headers=bob), 403
    )
    token = bob["Authorization"].removeprefix("Bearer ")
    url = f"/api/workspaces/{ws}/terminal?token={token}"
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(url) as terminal:
        terminal.receive_bytes()
    assert refused.value.code == 4403


def test_without_a_sandbox_backend_exec_is_503(db_url: str, tmp_path: Path) -> None:
    config = gateway_config(db_url, tmp_path / "blobs")
    with running_gateway(config) as client:
        auth = bearer(register_and_login(client)["access_token"])
        ws = workspace(client, auth, "blank")
        body = assert_problem(
            client.post(f"/api/workspaces/{ws}/exec", json={"command": "true"}, headers=auth), 503
        )
        assert str(body["detail"]).startswith("sandbox backend unavailable")


def test_secrets_reach_only_the_commands_that_ask_and_never_come_back(
    client: TestClient, ada: dict[str, str]
) -> None:
    ws = workspace(client, ada, "blank")
    value = "s3cr3t-token-value-42"
    stored = client.put(
        f"/api/workspaces/{ws}/secrets/API_TOKEN", json={"value": value}, headers=ada
    )
    assert stored.status_code in (200, 201), stored.text
    assert value not in stored.text

    without = run(client, ada, ws, command='echo "token=${API_TOKEN:-unset}"')
    assert without["stdout"] == "token=unset\n"

    used = run(
        client,
        ada,
        ws,
        command='test "$API_TOKEN" = "s3cr3t-token-value-42" && echo "match $API_TOKEN"',
        secrets=["API_TOKEN"],
    )
    assert used["exit_code"] == 0
    assert value not in used["stdout"]
    assert used["stdout"] == "match [redacted]\n"

    missing = client.post(
        f"/api/workspaces/{ws}/exec", json={"command": "true", "secrets": ["NOPE"]}, headers=ada
    )
    assert missing.status_code == 404

    # The read is on the workspace's audit trail (names only, never the value).
    reads = client.get(
        f"/api/workspaces/{ws}/audit", headers=ada, params={"action": "secret.read"}
    ).json()["items"]
    assert [item["details"]["names"] for item in reads] == [["API_TOKEN"]]
    assert value not in json.dumps(reads)

    # Streamed output cannot be redacted before it leaves: the stream refuses secrets.
    streamed = client.post(
        f"/api/workspaces/{ws}/exec/stream",
        json={"command": "true", "secrets": ["API_TOKEN"]},
        headers=ada,
    )
    assert_problem(streamed, 422)
