"""Hosted sessions through real Ray actors: a host killed mid-stream loses no acknowledged write."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors.workspace.actor import HostConfig
from actors.workspace.api import Author, WorkspaceError
from actors.workspace.catalog import WorkspaceCatalog
from actors.workspace.directory import owner_of
from actors.workspace.ray_writer import RayWorkspaceWriter
from actors.workspace.reader import WorkspaceReader
from actors.workspace.settings import WorkspaceSettings
from state.blobs import open_blob_store
from state.db import Database
from state.models import User, new_id
from state.settings import DatabaseSettings, LocalBlobSettings
from tests.harness.run import next_name

pytestmark = pytest.mark.ray


@pytest.fixture
async def world(
    ray_address: str, db_url: str, tmp_path: Path
) -> AsyncIterator[tuple[RayWorkspaceWriter, WorkspaceReader, str]]:
    config = HostConfig(
        db=DatabaseSettings(url=db_url),
        blob=LocalBlobSettings(root=tmp_path / "blobs"),
        workspace=WorkspaceSettings(hosts=2, trees_dir=tmp_path / "trees", request_timeout_s=30),
    )
    writer = RayWorkspaceWriter(config, namespace=f"ns-{next_name()}")
    database = Database(db_url)
    blobs = open_blob_store(config.blob)
    user_id = new_id()
    async with database.session() as session, session.begin():
        session.add(User(id=user_id, email=f"{user_id}@example.com", password_hash=None))
    record = await WorkspaceCatalog(database).create(user_id, name="killable", template="blank")
    try:
        yield writer, WorkspaceReader(database, blobs), record.id
    finally:
        writer.kill_hosts()
        await database.close()
        await blobs.close()


async def test_writes_and_reads_through_host_actors(
    world: tuple[RayWorkspaceWriter, WorkspaceReader, str],
) -> None:
    writer, reader, workspace_id = world
    author = Author(user_id=None, kind="system")
    payload = os.urandom(200_000)
    result = await writer.write_file(
        workspace_id, "data/blob.bin", payload, if_match=None, author=author
    )
    assert result.sha256 == hashlib.sha256(payload).hexdigest()
    _, data = await reader.read_file(workspace_id, "data/blob.bin")
    assert data == payload
    sessions = await writer.sessions()
    mine = [s for s in sessions if s.workspace_id == workspace_id]
    assert len(mine) == 1
    assert mine[0].host == owner_of(workspace_id, ["ws-host:0", "ws-host:1"])
    assert mine[0].node_id


async def test_a_host_killed_mid_stream_keeps_every_acknowledged_write(
    world: tuple[RayWorkspaceWriter, WorkspaceReader, str],
) -> None:
    import ray

    writer, reader, workspace_id = world
    author = Author(user_id=None, kind="user")
    await writer.write_file(workspace_id, "warmup.txt", b"up", if_match=None, author=author)
    contents = {f"stream/file-{i:03}.txt": os.urandom(64) + str(i).encode() for i in range(120)}
    acknowledged: dict[str, int] = {}
    failed: list[str] = []
    first_acks = asyncio.Event()

    async def write(path: str, data: bytes) -> None:
        try:
            result = await writer.write_file(workspace_id, path, data, if_match=None, author=author)
        except WorkspaceError:
            failed.append(path)
            return
        acknowledged[path] = result.version
        if len(acknowledged) >= 10:
            first_acks.set()

    async def paced() -> None:
        tasks = []
        for path, data in contents.items():
            tasks.append(asyncio.create_task(write(path, data)))
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)

    stream = asyncio.create_task(paced())
    await asyncio.wait_for(first_acks.wait(), 60)
    owner = owner_of(workspace_id, ["ws-host:0", "ws-host:1"])
    pid_before = (await writer.handle(owner).ping.remote())["pid"]
    # On the host's node, writes take the host's socket, not a Ray call.
    assert str(writer.channel_path(owner)).endswith(f"-{pid_before}.sock")
    ray.kill(writer.handle(owner), no_restart=False)
    await asyncio.wait_for(stream, 120)

    assert len(acknowledged) >= 10
    listed = {info.path: info for info in await reader.list_files(workspace_id)}
    for path, version in acknowledged.items():
        assert path in listed, f"acknowledged write of {path} (version {version}) was lost"
        _, data = await reader.read_file(workspace_id, path)
        assert data == contents[path]
    for path in failed:
        if path in listed:  # landed whole or not at all
            _, data = await reader.read_file(workspace_id, path)
            assert data == contents[path]
    versions = await reader.list_versions(workspace_id, limit=1000)
    numbers = [v.number for v in versions]
    assert numbers == sorted(numbers, reverse=True)
    assert len(set(numbers)) == len(numbers)
    # The restarted host serves the workspace again.
    after = await writer.write_file(workspace_id, "after.txt", b"ok", if_match=None, author=author)
    assert after.version == max(numbers) + 1
    pid_after = (await writer.handle(owner).ping.remote())["pid"]
    assert pid_after != pid_before
    assert str(writer.channel_path(owner)).endswith(f"-{pid_after}.sock")
    print(f"acknowledged={len(acknowledged)} failed={len(failed)}")


async def test_a_cancelled_exec_stops_the_command_on_the_host(
    ray_address: str, db_url: str, tmp_path: Path
) -> None:
    """Cancelling the caller (an agent run cancelled, a client gone) stops the command in
    the host's sandbox: awaiting a Ray ref is not enough by itself."""
    from sandbox import ExecRequest
    from tests.integration.sandbox_gateway import sandbox_test_settings

    config = HostConfig(
        db=DatabaseSettings(url=db_url),
        blob=LocalBlobSettings(root=tmp_path / "blobs"),
        workspace=WorkspaceSettings(hosts=1, trees_dir=tmp_path / "trees", request_timeout_s=30),
        sandbox=sandbox_test_settings(isolated=False),
    )
    writer = RayWorkspaceWriter(config, namespace=f"ns-{next_name()}")
    database = Database(db_url)
    blobs = open_blob_store(config.blob)
    user_id = new_id()
    async with database.session() as session, session.begin():
        session.add(User(id=user_id, email=f"{user_id}@example.com", password_hash=None))
    record = await WorkspaceCatalog(database).create(user_id, name="cancel", template="blank")
    author = Author(user_id=user_id, kind="user")
    try:
        warm = await writer.exec(record.id, ExecRequest(shell="true"), author=author)
        assert warm.result.exit_code == 0
        slow = asyncio.create_task(
            writer.exec(
                record.id,
                ExecRequest(shell="sleep 2 && echo late > late.txt", timeout_s=10),
                author=author,
            )
        )
        await asyncio.sleep(0.7)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        await asyncio.sleep(3)  # Past the moment the command would have written its file.
        listed = await writer.exec(record.id, ExecRequest(shell="ls"), author=author)
        assert "late.txt" not in listed.result.stdout.decode()
        with pytest.raises(WorkspaceError):
            await WorkspaceReader(database, blobs).read_file(record.id, "late.txt")
    finally:
        writer.kill_hosts()
        await database.close()
        await blobs.close()
