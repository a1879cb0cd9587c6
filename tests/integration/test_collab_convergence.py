"""Concurrent editors converge through the real transport, and the file follows the document."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.workspace.settings import WorkspaceSettings
from serve_apps.gateway.app import build_app
from tests.harness.run import next_name
from tests.integration.collab_harness import (
    YClient,
    create_workspace,
    register,
    serve_in_thread,
    wait_converged,
    wait_for_file,
)
from tests.integration.gateway_client import gateway_config


@pytest.fixture
def live_gateway(db_url: str, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    config = gateway_config(db_url, tmp_path / "blobs")
    with serve_in_thread(build_app(config)) as base_url:
        account = register(base_url, f"{next_name()}@example.com")
        workspace_id = create_workspace(base_url, account.token)
        yield base_url, account.token, workspace_id


_edit = st.tuples(
    st.integers(min_value=0, max_value=9),  # which client
    st.booleans(),  # insert (True) or delete
    st.floats(min_value=0, max_value=1),  # where, as a fraction of the client's text
    st.text(alphabet="abcxyz é😀\n", min_size=1, max_size=6),
)


async def _run_edits(
    base_url: str,
    token: str,
    workspace_id: str,
    path: str,
    n_clients: int,
    edits: list[tuple[int, bool, float, str]],
) -> None:
    clients = [YClient(base_url, workspace_id, path, token) for _ in range(n_clients)]
    for client in clients:
        await client.connect()
    await asyncio.gather(*(c.wait_synced() for c in clients))

    async def edit(client: YClient, mine: list[tuple[bool, float, str]]) -> None:
        for insert, where, value in mine:
            position = int(where * len(client.text))
            if insert:
                await client.insert(position, value)
            else:
                await client.delete(position, len(value))
            await asyncio.sleep(0)

    await asyncio.gather(
        *(
            edit(client, [(i, w, v) for who, i, w, v in edits if who % n_clients == index])
            for index, client in enumerate(clients)
        )
    )
    await asyncio.gather(*(c.wait_acked() for c in clients))
    text = await wait_converged(clients)
    data = await wait_for_file(base_url, token, workspace_id, path, text)
    for client in clients:
        await client.close()
    # A document nobody typed in never becomes a file.
    assert (data or b"").decode() == text


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(n_clients=st.integers(min_value=2, max_value=10), edits=st.lists(_edit, max_size=30))
def test_concurrent_editors_converge_and_the_file_matches(
    live_gateway: tuple[str, str, str], n_clients: int, edits: list[tuple[int, bool, float, str]]
) -> None:
    base_url, token, workspace_id = live_gateway
    path = f"src/{next_name()}.txt"
    asyncio.run(_run_edits(base_url, token, workspace_id, path, n_clients, edits))


async def test_typing_through_many_flushes_loses_nothing(db_url: str, tmp_path: Path) -> None:
    # Flush (make a file version) often, so that versions commit while people keep typing.
    workspace = WorkspaceSettings(
        collab_flush_delay_s=0.02, collab_flush_max_delay_s=0.05, collab_compact_every=20
    )
    config = gateway_config(db_url, tmp_path / "blobs", workspace=workspace)
    with serve_in_thread(build_app(config)) as base_url:
        account = await asyncio.to_thread(register, base_url, f"{next_name()}@example.com")
        workspace_id = await asyncio.to_thread(create_workspace, base_url, account.token)
        typists = [YClient(base_url, workspace_id, "long.txt", account.token) for _ in range(2)]
        for typist in typists:
            await typist.connect()
            await typist.wait_synced()

        async def type_words(client: YClient, name: str) -> None:
            for i in range(40):
                await client.insert(len(client.text), f"{name}{i} ")
                await asyncio.sleep(0.005)

        await asyncio.gather(*(type_words(c, f"w{n}-") for n, c in enumerate(typists)))
        await asyncio.gather(*(c.wait_acked() for c in typists))
        text = await wait_converged(typists)
        assert sorted(text.split()) == sorted(f"w{n}-{i}" for n in range(2) for i in range(40))
        data = await wait_for_file(base_url, account.token, workspace_id, "long.txt", text)
        assert data == text.encode()
        for typist in typists:
            await typist.close()
