"""The host side of the supervisor protocol, fed the bytes an (untrusted) supervisor might send."""

from __future__ import annotations

import asyncio
import json
import struct

import pytest

from sandbox import SandboxCrashed
from sandbox.channel import ChannelProtocol, SupervisorChannel


class Written:
    """Where the channel's requests go: a list of decoded frames."""

    def __init__(self) -> None:
        self.frames: list[dict[str, object]] = []

    def write(self, data: bytes) -> None:
        (size,) = struct.unpack(">I", data[:4])
        assert size == len(data) - 4
        self.frames.append(json.loads(data[4:]))

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None


def frame(message: dict[str, object]) -> bytes:
    data = json.dumps(message).encode()
    return struct.pack(">I", len(data)) + data


async def started_call(op: str) -> tuple[SupervisorChannel, Written, asyncio.Task[dict]]:
    written = Written()
    channel = SupervisorChannel("sbx-test", written)
    task = asyncio.create_task(channel.call(op))
    await asyncio.sleep(0)
    return channel, written, task


async def test_answers_split_anywhere_reach_their_request() -> None:
    channel, written, task = await started_call("ping")
    (request,) = written.frames
    data = frame({"id": 999, "type": "result"}) + frame(
        {"id": request["id"], "type": "result", "running": 2}
    )
    for offset in range(0, len(data), 3):  # Three bytes at a time, headers split too.
        channel.feed(data[offset : offset + 3])
    assert (await task)["running"] == 2


@pytest.mark.parametrize(
    "garbage",
    [
        struct.pack(">I", 5) + b"nope!",  # not JSON
        struct.pack(">I", 2) + b"[]",  # not an object
        struct.pack(">I", 2**31) + b"{",  # a frame far past the cap
    ],
)
async def test_a_malformed_frame_is_a_crash(garbage: bytes) -> None:
    channel, _, task = await started_call("ping")
    channel.feed(garbage)
    with pytest.raises(SandboxCrashed, match="protocol error"):
        await task
    with pytest.raises(SandboxCrashed):
        await channel.call("ping")


async def test_end_of_stream_fails_waiting_requests() -> None:
    channel, _, task = await started_call("exec")
    channel.close("the supervisor exited")
    with pytest.raises(SandboxCrashed, match="the supervisor exited"):
        await task


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])  # Ray's actors run on uvloop.
def test_a_socket_channel_round_trip(loop_kind: str) -> None:
    import socket

    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    host_end, supervisor_end = socket.socketpair()

    async def round_trip() -> dict:
        host_end.setblocking(False)
        _, protocol = await loop.create_connection(ChannelProtocol, sock=host_end)
        channel = SupervisorChannel("sbx-test", protocol)
        protocol.attach(channel)
        call = asyncio.create_task(channel.call("ping"))
        request = await loop.sock_recv(supervisor_end, 4096)
        request_id = json.loads(request[4:])["id"]
        await loop.sock_sendall(supervisor_end, frame({"id": request_id, "type": "result"}))
        answer = await call
        supervisor_end.close()  # The supervisor went away: the next call fails, not hangs.
        with pytest.raises(SandboxCrashed):
            await asyncio.wait_for(channel.call("ping"), 5)
        await channel.aclose()
        return answer

    try:
        supervisor_end.setblocking(False)
        assert loop.run_until_complete(round_trip())["type"] == "result"
    finally:
        loop.close()
