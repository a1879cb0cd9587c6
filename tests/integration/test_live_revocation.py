"""Connections opened before a revocation lose their access within seconds, not at reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

from serve_apps.gateway.app import build_app
from serve_apps.gateway.live_auth import RECHECK_INTERVAL_S
from tests.harness.run import next_name
from tests.integration.collab_harness import (
    Account,
    YClient,
    create_workspace,
    register,
    serve_in_thread,
)
from tests.integration.gateway_client import gateway_config

# The re-check interval plus room for a slow CI machine.
CLOSED_WITHIN_S = RECHECK_INTERVAL_S + 6


@pytest.fixture
def base_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    with serve_in_thread(build_app(gateway_config(db_url, tmp_path / "blobs"))) as url:
        yield url


def _call(base_url: str, method: str, path: str, token: str, body: Any) -> httpx.Response:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        return http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})


async def test_signing_out_everywhere_closes_an_open_collab_socket(base_url: str) -> None:
    owner = register(base_url, f"{next_name()}@example.com")
    workspace_id = create_workspace(base_url, owner.token)
    email = f"{next_name()}@example.com"
    editor: Account = register(base_url, email)
    members = f"/api/workspaces/{workspace_id}/members"
    added = _call(base_url, "PUT", members, owner.token, {"email": email, "role": "editor"})
    assert added.status_code == 200, added.text
    revoked = YClient(base_url, workspace_id, "notes.txt", owner.token)
    kept = YClient(base_url, workspace_id, "notes.txt", editor.token)
    for client in (revoked, kept):
        await client.connect()
        await client.wait_synced()

    signed_out = _call(base_url, "POST", "/api/auth/logout", owner.token, {"everywhere": True})
    assert signed_out.status_code == 204, signed_out.text

    assert await revoked.wait_closed(CLOSED_WITHIN_S) == 4401
    assert kept.closed_code is None
    await kept.insert(0, "still editing")
    await kept.wait_acked()
    again = YClient(base_url, workspace_id, "notes.txt", owner.token)
    await again.connect()
    assert await again.wait_closed() == 4401
    await kept.close()


async def test_revoking_an_api_key_disconnects_its_socketio_connection(base_url: str) -> None:
    ada = register(base_url, f"{next_name()}@example.com")
    bob = register(base_url, f"{next_name()}@example.com")
    scopes = {"name": "laptop", "scopes": ["workspaces:read"]}
    created = _call(base_url, "POST", "/api/auth/api-keys", ada.token, scopes)
    assert created.status_code == 201, created.text
    key = created.json()

    revoked_events: list[Any] = []
    by_key = socketio.AsyncClient(reconnection=False)
    by_key.on("auth.revoked", revoked_events.append)
    kept = socketio.AsyncClient(reconnection=False)
    await by_key.connect(base_url, auth={"token": key["key"]}, transports=["websocket"])
    await kept.connect(base_url, auth={"token": bob.token}, transports=["websocket"])
    try:
        assert by_key.connected
        assert kept.connected
        deleted = _call(base_url, "DELETE", f"/api/auth/api-keys/{key['id']}", ada.token, None)
        assert deleted.status_code == 204, deleted.text

        deadline = asyncio.get_running_loop().time() + CLOSED_WITHIN_S
        while by_key.connected:
            assert asyncio.get_running_loop().time() < deadline, "still connected"
            await asyncio.sleep(0.05)
        assert revoked_events == [{"code": 4401, "reason": "credentials revoked"}]
        assert kept.connected
        workspace_id = create_workspace(base_url, bob.token)
        joined = await kept.call("join", {"workspace_id": workspace_id}, timeout=10)
        assert joined["ok"] is True
    finally:
        await by_key.disconnect()
        await kept.disconnect()
