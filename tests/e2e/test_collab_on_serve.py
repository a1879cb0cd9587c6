"""Live collaboration through the deployed platform: Serve's HAProxy ingress on the real port.

Python Yjs clients speak the y-websocket protocol to ``/collab/...`` and Socket.IO clients join the
workspace room, all through what `vibecode up` runs (one gateway replica, no Redis: the hosts
reach the gateway through the cluster's kv-bus actor); what they type is read back through the
files API, and what the files API writes reaches them live. test_collab_replicas_on_serve.py covers several
replicas with Redis.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.harness.run import next_name
from tests.integration.collab_harness import (
    Listener,
    YClient,
    create_workspace,
    register,
    wait_converged,
    wait_for_file,
)

pytestmark = pytest.mark.ray


async def test_yjs_and_socketio_clients_edit_through_serve(platform: str) -> None:
    owner = await asyncio.to_thread(register, platform, f"{next_name()}@example.com")
    workspace = await asyncio.to_thread(create_workspace, platform, owner.token)

    # Socket.IO the way a browser connects (long-polling, then the WebSocket upgrade) and the
    # WebSocket transport alone, both through HAProxy and Serve's proxy.
    watcher, typist = Listener(), Listener()
    await watcher.client.connect(platform, auth={"token": owner.token})
    await typist.client.connect(platform, auth={"token": owner.token}, transports=["websocket"])
    editors: list[YClient] = []
    try:
        joined = await watcher.client.call("join", {"workspace_id": workspace}, timeout=15)
        assert joined["ok"] is True, joined
        assert joined["role"] == "owner"
        await typist.client.call("join", {"workspace_id": workspace}, timeout=15)
        presence = await watcher.wait_for("presence", lambda d: d["state"] == "joined")
        assert presence["user_id"] == owner.user_id

        # Two Yjs editors on one document: each sees the other's typing, edits are durable.
        editors = [YClient(platform, workspace, "notes.md", owner.token) for _ in range(2)]
        for editor in editors:
            await editor.connect()
            await editor.wait_synced()
        first, second = editors
        await first.insert(0, "typed through HAProxy\n")
        await first.wait_acked()
        await asyncio.wait_for(_until(lambda: "HAProxy" in second.text), 15)
        await second.insert(len(second.text), "and answered\n")
        await typist.client.emit(
            "cursor", {"workspace_id": workspace, "path": "notes.md", "index": 3}
        )
        cursor = await watcher.wait_for("cursor", lambda d: d.get("path") == "notes.md")
        assert cursor["user_id"] == owner.user_id
        await asyncio.gather(*(e.wait_acked() for e in editors))
        text = await wait_converged(editors)
        assert text == "typed through HAProxy\nand answered\n"

        # The document becomes the file: the files API reads back what was typed.
        data = await wait_for_file(platform, owner.token, workspace, "notes.md", text)
        assert data == text.encode()

        # Without Redis the workspace's host is still another process than the gateway: the
        # room hears of the version (through the cluster's kv-bus), and a write through the
        # files API (as the agent or a sandbox makes them) shows up in both open editors live.
        await watcher.wait_for("files.changed", lambda d: "notes.md" in str(d))
        auth = {"Authorization": f"Bearer {owner.token}"}
        async with httpx.AsyncClient(base_url=platform, headers=auth, timeout=30) as http:
            put = await http.put(
                f"/api/workspaces/{workspace}/files/notes.md", content=data + b"written by API\n"
            )
            assert put.status_code == 200, put.text
        for editor in editors:
            await asyncio.wait_for(_until(lambda e=editor: e.text.endswith("by API\n")), 15)
    finally:
        for editor in editors:
            await editor.close()
        await watcher.client.disconnect()
        await typist.client.disconnect()


async def _until(condition: Any) -> None:
    while not condition():  # noqa: ASYNC110 - polling a client's in-memory document
        await asyncio.sleep(0.02)
