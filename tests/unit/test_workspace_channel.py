"""The same-node channel to a workspace host: answers, errors, breaks and who may connect."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from actors.workspace.api import PreconditionFailed
from actors.workspace.channel import (
    ChannelBroken,
    ChannelClient,
    ChannelServer,
    HostChannels,
    channel_directory,
)


class Host:
    """Stands in for the actor shell: the channel calls its methods by name."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.release = asyncio.Event()

    async def dispatch(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await getattr(self, method)(*args, **kwargs)

    async def write_file(
        self, workspace_id: str, path: str, data: bytes, *, if_match: str | None = None
    ) -> int:
        if path == "slow.txt":
            await self.release.wait()
        if path in self.files and if_match == "stale":
            raise PreconditionFailed(f"{path} changed", "abc123")
        self.files[path] = data
        return len(self.files)

    async def delete_file(self, workspace_id: str, path: str, **_: Any) -> None:
        raise RuntimeError("the disk is on fire")

    async def sessions(self) -> list[str]:
        return ["not served on the channel"]


@pytest.fixture
async def served(tmp_path: Path) -> Any:
    host = Host()
    server = ChannelServer(host.dispatch)
    path = await server.start(f"ws-host:test-{os.getpid()}-{id(tmp_path)}")
    assert path is not None
    client = ChannelClient(str(path))
    yield host, server, client, path
    await client.close()
    await server.close()


async def test_calls_answer_in_any_order_over_one_connection(served: Any) -> None:
    host, _, client, _ = served
    slow = asyncio.create_task(client.call("write_file", ("ws", "slow.txt", b"s"), {}))
    quick = [
        await client.call("write_file", ("ws", f"f{i}.txt", b"x" * i), {"if_match": None})
        for i in range(20)
    ]
    assert quick == list(range(1, 21))  # answered while the slow call still waits
    assert not slow.done()
    host.release.set()
    assert await slow == 21
    assert host.files["f7.txt"] == b"x" * 7


async def test_errors_arrive_as_the_errors_the_host_raised(served: Any) -> None:
    _, _, client, _ = served
    await client.call("write_file", ("ws", "a.txt", b"1"), {})
    with pytest.raises(PreconditionFailed) as caught:
        await client.call("write_file", ("ws", "a.txt", b"2"), {"if_match": "stale"})
    assert caught.value.current_sha256 == "abc123"
    with pytest.raises(RuntimeError, match="the disk is on fire"):
        await client.call("delete_file", ("ws", "a.txt"), {})
    with pytest.raises(RuntimeError, match="not served on the channel"):
        await client.call("sessions", (), {})
    # The connection survives errors.
    assert await client.call("write_file", ("ws", "b.txt", b"3"), {}) == 2


async def test_a_host_going_away_fails_calls_in_flight_as_maybe_applied(served: Any) -> None:
    _, server, client, _ = served
    slow = asyncio.create_task(client.call("write_file", ("ws", "slow.txt", b"s"), {}))
    await asyncio.sleep(0.05)
    await server.close()
    with pytest.raises(ChannelBroken) as caught:
        await asyncio.wait_for(slow, 5)
    assert caught.value.sent
    assert not client.usable_here()


async def test_no_socket_means_nothing_was_sent(tmp_path: Path) -> None:
    client = ChannelClient(str(tmp_path / "gone.sock"))
    with pytest.raises(ChannelBroken) as caught:
        await client.call("write_file", ("ws", "a.txt", b"1"), {})
    assert not caught.value.sent


async def test_only_the_platform_user_can_reach_the_socket(served: Any) -> None:
    _, _, _, path = served
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    directory = path.parent.lstat()
    assert stat.S_IMODE(directory.st_mode) == 0o700
    assert directory.st_uid == os.getuid()


async def test_hosts_are_looked_up_once_and_again_only_after_a_break(served: Any) -> None:
    _, _, _, path = served
    lookups: list[str] = []

    async def lookup(name: str) -> str | None:
        lookups.append(name)
        if name == "restarting":
            raise ConnectionError("the host is restarting")
        return str(path) if name == "here" else None  # "there" runs on another node

    channels = HostChannels(lookup, recheck_s=60.0)
    here = await channels.get("here")
    assert here is not None
    assert await here.call("write_file", ("ws", "a.txt", b"1"), {}) == 1
    assert await channels.get("here") is here
    assert await channels.get("there") is None
    assert await channels.get("there") is None  # through Ray, not asked again for a while
    assert lookups == ["here", "there"]
    assert channels.path("here") == str(path)

    channels.broke("here", ChannelBroken("host restarted", sent=True))
    assert await channels.get("here") is not None  # asked again at once
    channels.broke("here", ChannelBroken("no socket", sent=False))
    assert await channels.get("here") is None  # an unreachable socket is avoided for a while
    assert lookups == ["here", "there", "here"]
    # A host that cannot answer yet is asked again on the next call, not avoided.
    assert await channels.get("restarting") is None
    assert await channels.get("restarting") is None
    assert lookups[-2:] == ["restarting", "restarting"]


def _pid_of_an_ended_process() -> int:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return int(ended.stdout)


async def test_a_starting_host_removes_the_sockets_of_dead_hosts_of_any_name(
    tmp_path: Path,
) -> None:
    directory = channel_directory()
    assert directory is not None
    dead = directory / f"ws-host-gone-{id(tmp_path)}-{_pid_of_an_ended_process()}.sock"
    alive = directory / f"ws-host-elsewhere-{id(tmp_path)}-{os.getpid()}.sock"
    for path in (dead, alive):
        path.touch()
    server = ChannelServer(Host().dispatch)
    try:
        assert await server.start(f"ws-host:test-{id(tmp_path)}") is not None
        assert not dead.exists()
        assert alive.exists()  # its process still runs
    finally:
        await server.close()
        alive.unlink()
