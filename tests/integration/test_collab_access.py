"""Who may edit live, what files API writes do to open documents, and reconnecting."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from collab.protocol import encode_update
from serve_apps.gateway.app import build_app
from tests.harness.run import next_name
from tests.integration.collab_harness import (
    Account,
    YClient,
    create_workspace,
    register,
    serve_in_thread,
    wait_converged,
    wait_for_file,
)
from tests.integration.gateway_client import gateway_config


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Account, str]]:
    config = gateway_config(db_url, tmp_path / "blobs")
    with serve_in_thread(build_app(config)) as base_url:
        owner = register(base_url, f"{next_name()}@example.com")
        yield base_url, owner, create_workspace(base_url, owner.token)


def _add_member(base_url: str, owner: Account, workspace_id: str, email: str, role: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        response = http.put(
            f"/api/workspaces/{workspace_id}/members",
            json={"email": email, "role": role},
            headers={"Authorization": f"Bearer {owner.token}"},
        )
        assert response.status_code == 200, response.text


async def test_strangers_and_bad_tokens_are_refused(world: tuple[str, Account, str]) -> None:
    base_url, _owner, workspace_id = world
    stranger = register(base_url, f"{next_name()}@example.com")
    for token, code in ((stranger.token, 4404), ("not-a-token", 4401)):
        client = YClient(base_url, workspace_id, "a.txt", token)
        await client.connect()
        assert await client.wait_closed() == code


async def test_viewers_receive_edits_but_their_own_are_rejected(
    world: tuple[str, Account, str],
) -> None:
    base_url, owner, workspace_id = world
    email = f"{next_name()}@example.com"
    viewer_account = register(base_url, email)
    _add_member(base_url, owner, workspace_id, email, "viewer")
    editor = YClient(base_url, workspace_id, "notes.txt", owner.token)
    viewer = YClient(base_url, workspace_id, "notes.txt", viewer_account.token)
    for client in (editor, viewer):
        await client.connect()
        await client.wait_synced()
    await editor.insert(0, "from the editor")
    await editor.wait_acked()
    assert await wait_converged([editor, viewer]) == "from the editor"
    update = viewer.doc.insert(0, "sneaky ")
    assert update is not None
    await viewer.send_raw(encode_update(update))
    deadline = asyncio.get_running_loop().time() + 10
    while not viewer.denied:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    assert editor.text == "from the editor"
    data = await wait_for_file(base_url, owner.token, workspace_id, "notes.txt", "from the editor")
    assert data == b"from the editor"


async def test_a_removed_member_is_disconnected(world: tuple[str, Account, str]) -> None:
    base_url, owner, workspace_id = world
    email = f"{next_name()}@example.com"
    member = register(base_url, email)
    _add_member(base_url, owner, workspace_id, email, "editor")
    client = YClient(base_url, workspace_id, "x.txt", member.token)
    await client.connect()
    await client.wait_synced()
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        me = await http.get("/api/auth/me", headers={"Authorization": f"Bearer {member.token}"})
        response = await http.delete(
            f"/api/workspaces/{workspace_id}/members/{me.json()['id']}",
            headers={"Authorization": f"Bearer {owner.token}"},
        )
        assert response.status_code == 204, response.text
    assert await client.wait_closed() == 4403


async def test_files_api_writes_reach_open_editors_as_edits(
    world: tuple[str, Account, str],
) -> None:
    base_url, owner, workspace_id = world
    headers = {"Authorization": f"Bearer {owner.token}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        put = await http.put(
            f"/api/workspaces/{workspace_id}/files/app.py",
            content=b"a = 1\nb = 2\n",
            headers=headers,
        )
        assert put.status_code in (200, 201), put.text
    client = YClient(base_url, workspace_id, "app.py", owner.token)
    await client.connect()
    await client.wait_synced()
    assert client.text == "a = 1\nb = 2\n"
    await client.insert(len("a = 1\n"), "# typed\n")
    await client.wait_acked()
    await wait_for_file(base_url, owner.token, workspace_id, "app.py", "a = 1\n# typed\nb = 2\n")
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        put = await http.put(
            f"/api/workspaces/{workspace_id}/files/app.py",
            content=b"a = 1\n# typed\nb = 3\n",
            headers=headers,
        )
        assert put.status_code == 200, put.text
    deadline = asyncio.get_running_loop().time() + 10
    while client.text != "a = 1\n# typed\nb = 3\n":
        assert asyncio.get_running_loop().time() < deadline, client.text
        await asyncio.sleep(0.02)
    await client.close()


async def test_a_reconnecting_client_loses_nothing(world: tuple[str, Account, str]) -> None:
    base_url, owner, workspace_id = world
    a = YClient(base_url, workspace_id, "r.txt", owner.token)
    b = YClient(base_url, workspace_id, "r.txt", owner.token)
    for client in (a, b):
        await client.connect()
        await client.wait_synced()
    await a.insert(0, "one ")
    await a.wait_acked()
    await a.close()
    # Offline edits on both sides, then a reconnects and resyncs from its state vector.
    a.doc.insert(len(a.text), "offline ")
    await b.insert(0, "two ")
    await b.wait_acked()
    await a.connect()
    await a.wait_synced()
    await a.wait_acked()
    text = await wait_converged([a, b])
    assert sorted(text.split()) == ["offline", "one", "two"]
    assert await wait_for_file(base_url, owner.token, workspace_id, "r.txt", text) == text.encode()
