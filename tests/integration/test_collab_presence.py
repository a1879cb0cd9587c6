"""Presence across two gateway replicas sharing one Redis: everyone is listed, whichever replica
they connected to, and a replica that stops takes its users with it."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import httpx
import socketio

from serve_apps.gateway.app import build_app
from tests.harness.run import next_name
from tests.integration.collab_harness import (
    Account,
    YClient,
    create_workspace,
    register,
    serve_in_thread,
)
from tests.integration.gateway_client import gateway_config


class Member:
    """A Socket.IO client of one replica that records the events it receives."""

    def __init__(self, base_url: str, account: Account) -> None:
        self.base_url, self.account = base_url, account
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.client.on("*", self._record)

    async def _record(self, event: str, data: Any) -> None:
        self.events.append((event, data))

    async def join(self, workspace_id: str) -> list[str]:
        if not self.client.connected:
            await self.client.connect(
                self.base_url, auth={"token": self.account.token}, transports=["websocket"]
            )
        answer = await self.client.call("join", {"workspace_id": workspace_id}, timeout=15)
        assert answer["ok"] is True, answer
        users: list[str] = answer["users"]
        return users

    async def presence(self, predicate: Any, timeout_s: float = 10) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            for name, data in self.events:
                if name == "presence" and predicate(data):
                    return dict(data)
            await asyncio.sleep(0.02)
        raise AssertionError(f"no such presence event in {self.events}")


def _add_member(base_url: str, owner: Account, workspace_id: str, email: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        response = http.put(
            f"/api/workspaces/{workspace_id}/members",
            json={"email": email, "role": "editor"},
            headers={"Authorization": f"Bearer {owner.token}"},
        )
        assert response.status_code == 200, response.text


async def test_presence_crosses_replicas_sharing_redis(
    db_url: str, tmp_path: Path, redis_url: str
) -> None:
    config = gateway_config(db_url, tmp_path / "blobs", redis_url=redis_url)
    with contextlib.ExitStack() as stack:
        url_a = stack.enter_context(serve_in_thread(build_app(config)))
        replica_b = contextlib.ExitStack()
        url_b = replica_b.enter_context(serve_in_thread(build_app(config)))
        stack.push(replica_b)
        emails = [f"{next_name()}@example.com" for _ in range(3)]
        ada, bob, cy = [await asyncio.to_thread(register, url_a, email) for email in emails]
        workspace = await asyncio.to_thread(create_workspace, url_a, ada.token)
        for email in emails[1:]:
            await asyncio.to_thread(_add_member, url_a, ada, workspace, email)

        on_a, on_b = Member(url_a, ada), Member(url_b, bob)
        try:
            assert await on_a.join(workspace) == [ada.user_id]
            # Bob reaches the other replica and still sees Ada; Ada hears that Bob came.
            assert await on_b.join(workspace) == sorted([ada.user_id, bob.user_id])
            joined = await on_a.presence(lambda d: d["user_id"] == bob.user_id)
            assert joined["state"] == "joined"
            assert joined["users"] == sorted([ada.user_id, bob.user_id])

            # Cy only has a document open, on replica B: she is present too.
            editor = YClient(url_b, workspace, "notes.md", cy.token)
            await editor.connect()
            await editor.wait_synced()
            assert await on_a.join(workspace) == sorted([ada.user_id, bob.user_id, cy.user_id])

            # Bob leaves: Ada's replica tells her, and the list no longer has him.
            await on_b.client.disconnect()
            left = await on_a.presence(lambda d: d["state"] == "left")
            assert left["user_id"] == bob.user_id
            assert left["users"] == sorted([ada.user_id, cy.user_id])

            # Replica B stops: Cy's document socket went with it, and so did her presence.
            replica_b.close()
            await editor.wait_closed()
            assert await on_a.join(workspace) == [ada.user_id]
        finally:
            await on_a.client.disconnect()
            await on_b.client.disconnect()
