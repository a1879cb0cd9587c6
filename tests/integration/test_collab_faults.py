"""Faults while people type: the WorkspaceHost killed, a gateway replica killed, Redis restarted.

Every edit a client saw acknowledged must be in the converged document and in the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from actors.kv_bus import RayKeyValueStore
from actors.workspace.actor import HostConfig
from actors.workspace.api import WorkspaceWriter
from actors.workspace.directory import host_names, owner_of
from actors.workspace.ray_writer import RayWorkspaceWriter
from actors.workspace.settings import WorkspaceSettings
from serve_apps.gateway.app import build_app
from serve_apps.gateway.services import WriterContext
from tests.harness.ray_cluster import free_port
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

# Faults need processes sharing one database: PostgreSQL, as deployed.
pytestmark = [
    pytest.mark.ray,
    pytest.mark.postgres,
    pytest.mark.parametrize("db_url", ["postgres"], indirect=True),
]

ROOT = Path(__file__).resolve().parents[2]


class Typist:
    """Types unique words into a client; remembers which ones were acknowledged."""

    def __init__(self, client: YClient, name: str) -> None:
        self.client, self.name = client, name
        self.acked: list[str] = []
        self._count = 0

    async def type_words(self, n: int) -> None:
        for _ in range(n):
            word = f"{self.name}-{self._count} "
            self._count += 1
            await self.client.insert(len(self.client.text), word)
            try:
                await self.client.wait_acked(timeout_s=5)
            except TimeoutError:
                return  # Not acknowledged: no promise was made about this word.
            self.acked.append(word.strip())
            await asyncio.sleep(0.01)


async def test_the_workspace_host_killed_mid_edit_loses_no_acknowledged_edit(
    ray_address: str, db_url: str, tmp_path: Path
) -> None:
    import ray

    workspace = WorkspaceSettings(hosts=2, trees_dir=tmp_path / "trees", request_timeout_s=30)
    config = gateway_config(db_url, tmp_path / "blobs", workspace=workspace)
    namespace = f"ns-{next_name()}"
    writers: list[RayWorkspaceWriter] = []

    async def ray_writer(context: WriterContext) -> WorkspaceWriter:
        writer = RayWorkspaceWriter(
            HostConfig(db=context.config.db, blob=context.config.blob, workspace=workspace),
            namespace=namespace,
        )
        writers.append(writer)
        return writer

    app = build_app(
        config,
        writer_factory=ray_writer,
        realtime_kv_factory=lambda: RayKeyValueStore(namespace),  # as the Serve deployment
    )
    with serve_in_thread(app) as base_url:
        owner = register(base_url, f"{next_name()}@example.com")
        workspace_id = create_workspace(base_url, owner.token)
        clients = [YClient(base_url, workspace_id, "main.py", owner.token) for _ in range(3)]
        for client in clients:
            await client.connect()
            await client.wait_synced()
        typists = [Typist(c, f"t{i}") for i, c in enumerate(clients)]
        typing = asyncio.gather(*(t.type_words(15) for t in typists))
        await asyncio.sleep(0.3)
        host = ray.get_actor(
            owner_of(workspace_id, ["ws-host:0", "ws-host:1"]), namespace=namespace
        )
        ray.kill(host, no_restart=False)
        await typing
        await asyncio.gather(*(t.type_words(3) for t in typists))
        text = await wait_converged(clients, timeout_s=30)
        for typist in typists:
            assert len(typist.acked) >= 3
            for word in typist.acked:
                assert word in text
        data = await wait_for_file(base_url, owner.token, workspace_id, "main.py", text)
        assert data == text.encode()
        for client in clients:
            await client.close()
    for writer in writers:
        writer.kill_hosts()


# --- several replicas sharing Redis ------------------------------------------------------------


class RedisProcess:
    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="vc-collab-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


def _wait_port(port: int, timeout_s: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


class Replica:
    def __init__(self, spec: dict[str, object]) -> None:
        self.spec = {**spec, "port": free_port()}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.spec['port']}"

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.collab_replica", json.dumps(self.spec)],
            cwd=ROOT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, "replica exited"
            time.sleep(0.1)
        raise TimeoutError("replica did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
async def replicas(
    ray_address: str, db_url: str, tmp_path: Path, redis_process: RedisProcess
) -> AsyncIterator[tuple[Replica, Replica, str]]:
    namespace = f"ns-{next_name()}"
    workspace = {"hosts": 2, "trees_dir": str(tmp_path / "trees"), "request_timeout_s": 30}
    spec: dict[str, object] = {
        "ray": ray_address,
        "namespace": namespace,
        "db": db_url,
        "blobs": str(tmp_path / "blobs"),
        "redis": redis_process.url,
        "workspace": workspace,
    }
    a, b = Replica(spec), Replica(spec)
    await asyncio.gather(asyncio.to_thread(a.start), asyncio.to_thread(b.start))
    try:
        yield a, b, namespace
    finally:
        a.kill()
        b.kill()
        import ray

        for name in ("ws-host:0", "ws-host:1"):
            try:
                ray.kill(ray.get_actor(name, namespace=namespace))
            except ValueError:
                continue


async def _reconnect(client: YClient, base_url: str) -> None:
    client.retarget(base_url)
    deadline = time.monotonic() + 30
    while True:
        try:
            await client.connect()
            await client.wait_synced(10)
            return
        except (OSError, TimeoutError):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)


async def test_a_replica_killed_and_redis_restarted_lose_no_acknowledged_edit(
    replicas: tuple[Replica, Replica, str], redis_process: RedisProcess
) -> None:
    a, b, _namespace = replicas
    owner = await asyncio.to_thread(register, a.base_url, f"{next_name()}@example.com")
    workspace_id = await asyncio.to_thread(create_workspace, a.base_url, owner.token)
    on_a = [YClient(a.base_url, workspace_id, "doc.md", owner.token) for _ in range(2)]
    on_b = [YClient(b.base_url, workspace_id, "doc.md", owner.token) for _ in range(2)]
    clients = on_a + on_b
    for client in clients:
        await client.connect()
        await client.wait_synced()
    typists = [Typist(c, f"t{i}") for i, c in enumerate(clients)]
    await asyncio.gather(*(t.type_words(3) for t in typists))
    await wait_converged(clients)  # across replicas, through Redis

    # Replica A dies mid-typing: its clients reconnect to B and resync.
    typing = asyncio.gather(*(t.type_words(5) for t in typists))
    await asyncio.sleep(0.1)
    await asyncio.to_thread(a.kill)
    await typing
    for client in on_a:
        await client.close()
        await _reconnect(client, b.base_url)
    await asyncio.gather(*(t.type_words(3) for t in typists))
    await wait_converged(clients)

    # A comes back; Redis restarts while people type; clients on both replicas converge.
    await asyncio.to_thread(a.start)
    for client in on_a:
        await client.close()
        await _reconnect(client, a.base_url)
    await asyncio.to_thread(redis_process.stop)
    typing = asyncio.gather(*(t.type_words(3) for t in typists))
    await asyncio.sleep(0.5)
    await asyncio.to_thread(redis_process.start)
    await typing
    await asyncio.sleep(1.5)  # replicas resubscribe and resync their clients
    await asyncio.gather(*(t.type_words(2) for t in typists))
    text = await wait_converged(clients, timeout_s=30)
    for typist in typists:
        for word in typist.acked:
            assert word in text
    data = await wait_for_file(b.base_url, owner.token, workspace_id, "doc.md", text)
    assert data == text.encode()
    for client in clients:
        await client.close()


async def test_an_editor_left_stale_by_a_redis_blip_catches_up_once_the_host_answers_again(
    ray_address: str, db_url: str, tmp_path: Path, redis_process: RedisProcess
) -> None:
    """Edits made while Redis was down reach the other replica's editor only through the resync
    after the resubscribe; here the workspace's host is frozen then, so the first resync fails,
    and the editor must still converge once the host answers again (without typing)."""
    import ray

    namespace = f"ns-{next_name()}"
    workspace = {"hosts": 1, "trees_dir": str(tmp_path / "trees"), "request_timeout_s": 30}
    spec: dict[str, object] = {
        "ray": ray_address,
        "namespace": namespace,
        "db": db_url,
        "blobs": str(tmp_path / "blobs"),
        "redis": redis_process.url,
        "workspace": workspace,
    }
    a = Replica(spec)
    # B gives up on a host that does not answer within 2 s: its resync then fails.
    b = Replica({**spec, "workspace": {**workspace, "request_timeout_s": 2}})
    host_pid: int | None = None
    try:
        await asyncio.gather(asyncio.to_thread(a.start), asyncio.to_thread(b.start))
        owner = await asyncio.to_thread(register, a.base_url, f"{next_name()}@example.com")
        workspace_id = await asyncio.to_thread(create_workspace, a.base_url, owner.token)
        on_a = YClient(a.base_url, workspace_id, "doc.md", owner.token)
        on_b = YClient(b.base_url, workspace_id, "doc.md", owner.token)
        for client in (on_a, on_b):
            await client.connect()
            await client.wait_synced()
        typist = Typist(on_a, "a")
        await typist.type_words(2)
        await wait_converged([on_a, on_b])

        # Redis goes down: A's editor types on (durable, acknowledged), B's editor misses it.
        await asyncio.to_thread(redis_process.stop)
        await typist.type_words(3)
        assert typist.acked[-1] in on_a.text
        await asyncio.sleep(0.5)
        assert typist.acked[-1] not in on_b.text

        # The host freezes; Redis comes back; B resubscribes and its resync times out.
        host = ray.get_actor(host_names(1)[0], namespace=namespace)
        host_pid = int((await host.ping.remote())["pid"])
        os.kill(host_pid, signal.SIGSTOP)
        await asyncio.to_thread(redis_process.start)
        await asyncio.sleep(6)  # resubscribe (<= 1 s), then the 2 s timeout, with room to spare
        assert typist.acked[-1] not in on_b.text

        os.kill(host_pid, signal.SIGCONT)
        host_pid = None
        text = await wait_converged([on_a, on_b], timeout_s=20)
        for word in typist.acked:
            assert word in text
        for client in (on_a, on_b):
            await client.close()
    finally:
        if host_pid is not None:
            os.kill(host_pid, signal.SIGCONT)
        a.kill()
        b.kill()
        for name in host_names(1):
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(name, namespace=namespace))
