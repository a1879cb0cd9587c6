"""A stock Yjs client (npm ``yjs`` + ``y-websocket`` in Node) edits beside a Python client."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_apps.gateway.app import build_app
from tests.harness.node import node_client_dir
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
from tests.unit.test_collab_protocol import JS


def test_the_reference_vectors_are_what_yjs_prints() -> None:
    node_dir = node_client_dir()
    printed = subprocess.run(
        ["node", "vectors.mjs"],
        cwd=node_dir,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    vectors = json.loads(printed.stdout)
    for name, value in JS.items():
        assert vectors[name] == value, name


@pytest.fixture
def live_gateway(db_url: str, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    config = gateway_config(db_url, tmp_path / "blobs")
    with serve_in_thread(build_app(config)) as base_url:
        account = register(base_url, f"{next_name()}@example.com")
        workspace_id = create_workspace(base_url, account.token)
        yield base_url, account.token, workspace_id


async def test_a_node_yjs_client_and_a_python_client_converge(
    live_gateway: tuple[str, str, str],
) -> None:
    base_url, token, workspace_id = live_gateway
    node_dir = node_client_dir()
    path = "src/shared-notes.md"
    python = YClient(base_url, workspace_id, path, token)
    await python.connect()
    await python.wait_synced()
    await python.insert(0, "hello from python\n")
    await python.wait_acked()
    server_url = base_url.replace("http://", "ws://") + f"/collab/{workspace_id}"
    node = await asyncio.create_subprocess_exec(
        "node",
        "client.mjs",
        server_url,
        path,
        token,
        "NODE WAS HERE\n",
        "from python, again",
        cwd=node_dir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert node.stdout is not None
    synced = json.loads(await asyncio.wait_for(node.stdout.readline(), 30))
    assert synced["text"] == "hello from python\n"  # the stock client synced from the server
    deadline = asyncio.get_running_loop().time() + 20
    while "NODE WAS HERE" not in python.text:
        assert asyncio.get_running_loop().time() < deadline, python.text
        await asyncio.sleep(0.02)
    await python.insert(len(python.text), "from python, again\n")
    await python.wait_acked()
    out, err = await asyncio.wait_for(node.communicate(), 30)
    assert node.returncode == 0, err.decode()
    node_text = json.loads(out.decode().strip().splitlines()[-1])["text"]
    text = await wait_converged([python])
    assert node_text == text
    assert text == "NODE WAS HERE\nhello from python\nfrom python, again\n"
    data = await wait_for_file(base_url, token, workspace_id, path, text)
    assert data == text.encode()
    await python.close()
