"""An AgentHost actor killed mid-run: Ray restarts it, and it resumes the run from the event log
without repeating a finished tool call (checked on the model server and the workspace)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from actors.agent.actor import RayAgentClient, agent_host_name
from actors.agent.api import TERMINAL_STATUSES, RunInfo, RunRequest
from actors.agent.settings import AgentSettings
from actors.agent.store import RunStore
from actors.workspace.actor import HostConfig
from actors.workspace.catalog import WorkspaceCatalog
from actors.workspace.ray_writer import RayWorkspaceWriter
from actors.workspace.reader import WorkspaceReader
from actors.workspace.settings import WorkspaceSettings
from serve_apps.gateway.agent_hosts import in_process_llm, ray_agent_client
from state.blobs import open_blob_store
from state.db import Database
from state.models import User, new_id
from state.settings import DatabaseSettings, LocalBlobSettings
from tests.harness.fake_openai import FakeOpenAI, Reply
from tests.harness.run import next_name
from tests.integration import llm_fixtures
from tests.integration.llm_fixtures import FAST_RETRIES, model_config

pytestmark = pytest.mark.ray

fake_openai_server = llm_fixtures.fake_openai_server
fake_openai = llm_fixtures.fake_openai


@dataclass
class World:
    client: RayAgentClient
    store: RunStore
    reader: WorkspaceReader
    user_id: str
    workspace_id: str

    async def until_ended(self, run_id: str, timeout_s: float = 90) -> RunInfo:
        async with asyncio.timeout(timeout_s):
            while True:
                run = await self.store.get(run_id)
                if run.status in TERMINAL_STATUSES:
                    return run
                await asyncio.sleep(0.1)


@pytest.fixture
async def world(
    ray_address: str, db_url: str, tmp_path: Path, fake_openai: FakeOpenAI
) -> AsyncIterator[World]:
    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump(model_config(fake_openai)))
    llm = FAST_RETRIES.model_copy(update={"config_path": models})
    workspace = HostConfig(
        db=DatabaseSettings(url=db_url),
        blob=LocalBlobSettings(root=tmp_path / "blobs"),
        workspace=WorkspaceSettings(hosts=1, trees_dir=tmp_path / "trees", request_timeout_s=30),
    )
    namespace = f"ns-{next_name()}"
    database = Database(db_url)
    blobs = open_blob_store(workspace.blob)
    client = ray_agent_client(
        db=database,
        workspace=workspace,
        agent=AgentSettings(hosts=1, poll_interval_s=0.05),
        llm_factory=functools.partial(in_process_llm, llm),
        namespace=namespace,
    )
    user_id = new_id()
    async with database.session() as session, session.begin():
        session.add(User(id=user_id, email=f"{user_id}@example.com", password_hash=None))
    record = await WorkspaceCatalog(database).create(user_id, name="resume", template="blank")
    try:
        yield World(
            client, RunStore(database), WorkspaceReader(database, blobs), user_id, record.id
        )
    finally:
        client.kill_hosts()
        RayWorkspaceWriter(workspace, namespace=namespace).kill_hosts()
        await database.close()
        await blobs.close()


# One database is enough here (each host restart imports litellm again: seconds); both
# databases run the log through the gateway tests.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_killed_host_resumes_its_run_without_repeating_finished_tool_calls(
    world: World, fake_openai: FakeOpenAI
) -> None:
    import ray

    fake_openai.script.add(
        "fast",
        Reply.tool_call("write_file", {"path": "a.txt", "content": "A"}),
        # The host is killed while it waits for this reply; it never arrives.
        Reply.text("lost with the host", delay_s=5),
        Reply.tool_call("write_file", {"path": "b.txt", "content": "B"}),
        Reply.tool_call("finish", {"summary": "a.txt and b.txt written"}),
    )
    request = RunRequest(workspace_id=world.workspace_id, user_id=world.user_id, prompt="go")
    run = await world.client.start(request)
    assert run.host == agent_host_name(0)

    async with asyncio.timeout(60):  # the host's first model call imports litellm
        while True:
            if len(fake_openai.requests) >= 2:
                break
            await asyncio.sleep(0.05)
    handle = world.client.handle(agent_host_name(0))
    pid_before = (await handle.ping.remote())["pid"]
    ray.kill(handle, no_restart=False)

    ended = await world.until_ended(run.run_id)
    assert (ended.status, ended.message) == ("succeeded", "a.txt and b.txt written")
    assert (await handle.ping.remote())["pid"] != pid_before

    # The workspace: each write happened once, as one agent version.
    versions = await world.reader.list_versions(world.workspace_id)
    assert [v.author_kind for v in versions] == ["agent", "agent"]
    assert {f.path for f in await world.reader.list_files(world.workspace_id)} == {"a.txt", "b.txt"}

    # The log: a.txt's action and observation once; the resumed host said so.
    events = await world.store.all_events(run.run_id)
    writes = [e for e in events if e.kind == "action" and e.payload["tool"] == "write_file"]
    assert [e.payload["arguments"] for e in writes].count('{"path": "a.txt", "content": "A"}') == 1
    observed = [e.payload["tool_call_id"] for e in events if e.kind == "observation"]
    assert len(observed) == len(set(observed)) == 3
    assert any(e.kind == "status" and e.payload.get("resumed") for e in events)

    # The model: after the restart the conversation was rebuilt, with a.txt's result once.
    assert len(fake_openai.requests) == 4
    resumed = fake_openai.requests[2].messages
    assert [m["role"] for m in resumed] == ["system", "user", "assistant", "tool"]
