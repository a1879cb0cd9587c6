"""Presence across gateway replicas: hubs sharing one key-value store (as replicas share Redis)."""

from __future__ import annotations

import asyncio

import pytest

from collab.rooms import Peer
from serve_apps.gateway import realtime_hub
from serve_apps.gateway.realtime_hub import RealtimeHub
from state.errors import StorageUnavailable
from state.kv import MemoryKeyValueStore


async def _until_true(condition: object, timeout_s: float = 5.0) -> None:
    async def wait() -> None:
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout_s)


async def test_everyone_in_a_workspace_is_listed_whichever_replica_they_joined() -> None:
    kv = MemoryKeyValueStore()
    async with RealtimeHub(kv) as a, RealtimeHub(kv) as b:
        await _until_true(lambda: b.origin in a.live_replicas() and a.origin in b.live_replicas())
        await a.join("w1", Peer("sid-1", "ada", True))
        await b.join("w1", Peer("sid-2", "bob", True))
        await b.join("w1", Peer("doc-3", "cy", False, path="main.py"))  # only a document open
        await b.join("w2", Peer("sid-4", "dee", True))
        assert await a.users("w1") == {"ada", "bob", "cy"}
        assert await b.users("w1") == {"ada", "bob", "cy"}
        assert await a.users("w2") == {"dee"}

        # One of a user's two connections leaves: still present. Both gone: not listed.
        await b.join("w1", Peer("sid-5", "bob", True))
        await b.leave("w1", "sid-2")
        assert await a.users("w1") == {"ada", "bob", "cy"}
        await b.leave("w1", "sid-5")
        assert await a.users("w1") == {"ada", "cy"}

    # A replica that shuts down takes its users with it.
    async with RealtimeHub(kv) as a, RealtimeHub(kv) as b:
        await _until_true(lambda: b.origin in a.live_replicas())
        await b.join("w1", Peer("sid-6", "eve", True))
        assert await a.users("w1") == {"eve"}
        await b.__aexit__(None, None, None)
        assert await a.users("w1") == set()


async def test_the_users_of_a_replica_that_died_drop_out_when_its_pings_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(realtime_hub, "REPLICA_TIMEOUT_S", 0.8)
    kv = MemoryKeyValueStore()
    async with RealtimeHub(kv) as a:
        b = RealtimeHub(kv)
        await b.__aenter__()
        await _until_true(lambda: b.origin in a.live_replicas())
        await b.join("w1", Peer("sid-1", "bob", True))
        assert await a.users("w1") == {"bob"}
        # Killed: no clean shutdown, so its key stays (until its TTL), but its pings stop.
        for task in (b._task, b._presence_task):
            assert task is not None
            task.cancel()
        assert await a.users("w1") == {"bob"}
        await _until_true(lambda: b.origin not in a.live_replicas())
        assert await a.users("w1") == set()


class FlakyStore(MemoryKeyValueStore):
    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def set(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None:
        if self.down:
            raise StorageUnavailable("redis", "connection refused")
        await super().set(key, value, ttl_s=ttl_s)


async def test_a_presence_write_that_failed_is_retried_on_refresh() -> None:
    kv = FlakyStore()
    async with RealtimeHub(kv) as a, RealtimeHub(kv) as b:
        await _until_true(lambda: b.origin in a.live_replicas())
        kv.down = True
        await b.join("w1", Peer("sid-1", "bob", True))  # does not raise
        assert await a.users("w1") == set()
        kv.down = False
        await b.presence.refresh()
        assert await a.users("w1") == {"bob"}
