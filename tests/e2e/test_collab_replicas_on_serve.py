"""Live collaboration through a deployment with two gateway replicas and Redis, behind Serve's
HAProxy ingress: whichever replica each connection lands on, editors converge, presence lists
everyone, file writes reach open editors live and ``files.changed`` reaches the room.

Serve has no sticky sessions, so with several replicas Socket.IO clients use the WebSocket
transport (long-polling needs every request of a session on one replica).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.harness.platform import vibecode
from tests.harness.run import next_name
from tests.integration.collab_harness import (
    Listener,
    YClient,
    create_workspace,
    register,
    wait_converged,
    wait_for_file,
)

# Several replicas share one database: PostgreSQL, as deployed.
pytestmark = [
    pytest.mark.ray,
    pytest.mark.postgres,
    pytest.mark.parametrize("db_url", ["postgres"], indirect=True),
]


@pytest.fixture
def replicated_platform(platform_env: dict[str, str], serve_port: int, redis_url: str) -> str:
    env = {
        **platform_env,
        "VIBECODE_REDIS__URL": redis_url,
        "VIBECODE_GATEWAY__NUM_REPLICAS": "2",
    }
    started = vibecode("up", "--detach", env=env)
    assert started.returncode == 0, started.stderr
    return f"http://127.0.0.1:{serve_port}"


async def _until(condition: Any, timeout_s: float = 15) -> None:
    async def wait() -> None:
        while not condition():  # noqa: ASYNC110 - polling a client's in-memory document
            await asyncio.sleep(0.02)

    await asyncio.wait_for(wait(), timeout_s)


async def test_editors_on_any_replica_converge_and_see_file_writes(
    replicated_platform: str,
) -> None:
    url = replicated_platform
    owner = await asyncio.to_thread(register, url, f"{next_name()}@example.com")
    workspace = await asyncio.to_thread(create_workspace, url, owner.token)
    listeners = [Listener() for _ in range(4)]
    editors = [YClient(url, workspace, "app.py", owner.token) for _ in range(4)]
    try:
        for listener in listeners:
            await listener.client.connect(
                url, auth={"token": owner.token}, transports=["websocket"]
            )
            joined = await listener.client.call("join", {"workspace_id": workspace}, timeout=15)
            assert joined["ok"] is True, joined
        for editor in editors:
            await editor.connect()
            await editor.wait_synced()
        for index, editor in enumerate(editors):
            await editor.insert(len(editor.text), f"line {index}\n")
        await asyncio.gather(*(e.wait_acked() for e in editors))
        text = await wait_converged(editors)
        assert sorted(text.splitlines()) == [f"line {i}" for i in range(4)]
        data = await wait_for_file(url, owner.token, workspace, "app.py", text)
        assert data == text.encode()

        # Every listener, on whichever replica, hears about the version the typing became.
        for listener in listeners:
            await listener.wait_for("files.changed", lambda d: "app.py" in str(d))

        # A write through the files API (as the agent or a sandbox would make) shows up in
        # every open editor, as an edit, without reconnecting.
        auth = {"Authorization": f"Bearer {owner.token}"}
        async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as http:
            put = await http.put(
                f"/api/workspaces/{workspace}/files/app.py", content=text.encode() + b"# done\n"
            )
            assert put.status_code == 200, put.text
        for editor in editors:
            await _until(lambda e=editor: e.text.endswith("# done\n"))
    finally:
        for editor in editors:
            await editor.close()
        for listener in listeners:
            await listener.client.disconnect()
