"""Socket.IO rooms: presence, file-tree changes and agent events reach every member live."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
import yaml

from actors.agent.settings import AgentSettings
from serve_apps.gateway.app import build_app
from tests.harness.fake_openai import FakeOpenAI, Reply
from tests.integration import llm_fixtures
from tests.integration.collab_harness import create_workspace, register, serve_in_thread
from tests.integration.gateway_client import gateway_config
from tests.integration.llm_fixtures import FAST_RETRIES, model_config

fake_openai_server = llm_fixtures.fake_openai_server
fake_openai = llm_fixtures.fake_openai


class Listener:
    """A Socket.IO client that records every event it receives."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.client.on("*", self._record)

    async def _record(self, event: str, data: Any) -> None:
        self.events.append((event, data))

    async def wait_for(self, event: str, predicate: Any = None, timeout_s: float = 15) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            for name, data in self.events:
                if name == event and (predicate is None or predicate(data)):
                    return data
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {event!r} event; got {[name for name, _ in self.events]}")


@pytest.fixture
def base_url(db_url: str, tmp_path: Path, fake_openai: FakeOpenAI) -> Any:
    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump(model_config(fake_openai)))
    config = gateway_config(db_url, tmp_path / "blobs").model_copy(
        update={
            "llm": FAST_RETRIES.model_copy(update={"config_path": models}),
            "agent": AgentSettings(poll_interval_s=0.02),
        }
    )
    with serve_in_thread(build_app(config)) as url:
        yield url


async def test_members_see_presence_files_and_agent_events(
    base_url: str, fake_openai: FakeOpenAI
) -> None:
    owner = await asyncio.to_thread(register, base_url, "owner@example.com")
    stranger = await asyncio.to_thread(register, base_url, "stranger@example.com")
    workspace = await asyncio.to_thread(create_workspace, base_url, owner.token)

    watcher, writer = Listener(), Listener()
    await watcher.client.connect(base_url, auth={"token": owner.token}, transports=["websocket"])
    await writer.client.connect(base_url, auth={"token": owner.token}, transports=["websocket"])
    try:
        joined = await watcher.client.call("join", {"workspace_id": workspace})
        assert joined["ok"] is True
        assert joined["role"] == "owner"
        await writer.client.call("join", {"workspace_id": workspace})
        presence = await watcher.wait_for("presence", lambda d: d["state"] == "joined")
        assert presence["user_id"] == owner.user_id

        auth = {"Authorization": f"Bearer {owner.token}"}
        async with httpx.AsyncClient(base_url=base_url, headers=auth, timeout=30) as http:
            put = await http.put(f"/api/workspaces/{workspace}/files/notes.md", content=b"# hi\n")
            assert put.status_code == 200
            changed = await watcher.wait_for("files.changed")
            assert "notes.md" in str(changed)

            fake_openai.script.add("fast", Reply.text("Nothing to change."))
            run = await http.post(f"/api/workspaces/{workspace}/agent/runs", json={"prompt": "hi"})
            assert run.status_code == 202, run.text
            run_id = run.json()["run_id"]
            event = await watcher.wait_for("agent.event", lambda d: d["run_id"] == run_id)
            assert event["seq"] >= 1

        # Someone who is not a member cannot join the room (and learns nothing about it).
        intruder = Listener()
        await intruder.client.connect(
            base_url, auth={"token": stranger.token}, transports=["websocket"]
        )
        try:
            refused = await intruder.client.call("join", {"workspace_id": workspace})
            assert refused["ok"] is False
        finally:
            await intruder.client.disconnect()
    finally:
        await watcher.client.disconnect()
        await writer.client.disconnect()


async def test_a_connection_without_a_valid_token_is_refused(base_url: str) -> None:
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(base_url, auth={"token": "garbage"}, transports=["websocket"])
