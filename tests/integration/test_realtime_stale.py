"""A document frame that its publisher could not send (its link to Redis broke) while the other
replicas stayed subscribed: they never see a gap in their own subscription, so only the
publisher's announcement can tell them to resync. Without it their editors would hold every
later update of that document as pending forever (Yjs waits for the missing one)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from actors.workspace.realtime import KvRealtime
from collab.protocol import encode_update
from serve_apps.gateway.realtime_hub import RealtimeHub
from state.errors import StateError
from state.kv.redis import RedisKeyValueStore
from tests.harness.realtime_peers import Editor, until_true
from tests.harness.tcp_proxy import TcpProxy

RESYNCED = b"resynced"


def _kv_through(proxy: TcpProxy, redis_url: str, key_prefix: str) -> RedisKeyValueStore:
    """A store whose every connection to Redis goes through ``proxy`` (and breaks with it)."""
    url = urlsplit(redis_url)
    credentials, at, _address = url.netloc.rpartition("@")
    through = url._replace(netloc=f"{credentials}{at}127.0.0.1:{proxy.port}").geturl()
    return RedisKeyValueStore(through, key_prefix=key_prefix, socket_timeout_s=1.0)


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[TcpProxy]:
    target = urlsplit(redis_url)
    assert target.hostname is not None
    assert target.port is not None
    async with TcpProxy(target.hostname, target.port) as proxy:
        yield proxy


async def test_a_frame_its_host_could_not_publish_makes_the_other_replicas_resync(
    redis_url: str, redis_key_prefix: str, proxy: TcpProxy
) -> None:
    replica_kv = RedisKeyValueStore(redis_url, key_prefix=redis_key_prefix)
    host_kv = _kv_through(proxy, redis_url, redis_key_prefix)
    host = KvRealtime(host_kv, origin="ws-host:0")
    resynced: list[tuple[str, str]] = []
    try:
        async with RealtimeHub(replica_kv) as hub:

            async def resync(workspace_id: str, path: str) -> None:
                resynced.append((workspace_id, path))
                hub.deliver(workspace_id, path, RESYNCED)

            hub.resync = resync
            editor, bystander = Editor("p1"), Editor("p2")
            hub.attach("w1", "doc.md", editor)
            hub.attach("w1", "other.md", bystander)
            first = encode_update(b"\x01")
            await host.broadcast("w1", "doc.md", first)
            await until_true(lambda: first in editor.received)

            await proxy.cut()  # the host's link to Redis breaks; the replica's does not
            with pytest.raises(StateError):
                await host.broadcast("w1", "doc.md", encode_update(b"\x02"))
            assert host.stale == {("w1", "doc.md")}
            await asyncio.sleep(0.5)  # announcements fail meanwhile
            assert RESYNCED not in editor.received

            await proxy.restore()
            await until_true(lambda: RESYNCED in editor.received)
            assert host.stale == set()
            assert resynced == [("w1", "doc.md")]  # only the document that lost a frame
            assert hub.resubscribed == 0  # the replica's own subscription never dropped
            assert bystander.received == []
    finally:
        await host.aclose()
        await host_kv.close()
        await replica_kv.close()


async def test_a_replica_that_could_not_fan_out_an_edit_announces_the_document_too(
    redis_url: str, redis_key_prefix: str, proxy: TcpProxy
) -> None:
    receiving_kv = RedisKeyValueStore(redis_url, key_prefix=redis_key_prefix)
    sending_kv = _kv_through(proxy, redis_url, redis_key_prefix)
    try:
        async with RealtimeHub(receiving_kv) as receiver, RealtimeHub(sending_kv) as sender:

            async def resync(workspace_id: str, path: str) -> None:
                receiver.deliver(workspace_id, path, RESYNCED)

            receiver.resync = resync
            remote, local = Editor("p1"), Editor("p2")
            receiver.attach("w1", "doc.md", remote)
            sender.attach("w1", "doc.md", local)
            await proxy.cut()
            edit = encode_update(b"\x03")
            await sender.broadcast("w1", "doc.md", edit)  # logged, not raised: local got it
            assert edit in local.received
            await proxy.restore()
            await until_true(lambda: RESYNCED in remote.received)
            assert edit not in remote.received  # the frame itself was lost; the resync repairs
    finally:
        await sending_kv.close()
        await receiving_kv.close()
