"""After the realtime channel drops, a replica resyncs its live documents' clients; a resync
that fails (the workspace's host is briefly away too) is retried until it succeeds."""

from __future__ import annotations

import asyncio

from collab.protocol import encode_update
from serve_apps.gateway.realtime_hub import RESYNC_CONCURRENCY, RealtimeHub
from state.errors import StorageUnavailable
from state.kv import MemoryKeyValueStore
from tests.harness.realtime_peers import Editor, until_true

RESYNCED = b"resynced"


class Owner:
    """The documents' owner as the hub's resync reaches it: away while ``away`` is set."""

    def __init__(self, hub: RealtimeHub) -> None:
        self.hub = hub
        self.away = False
        self.attempts = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def resync(self, workspace_id: str, path: str) -> None:
        self.attempts += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.05)
            if self.away:
                raise StorageUnavailable("workspace", "host unavailable")
            self.hub.deliver(workspace_id, path, RESYNCED)
        finally:
            self.in_flight -= 1


async def test_a_resync_that_failed_is_retried_until_the_editor_has_caught_up() -> None:
    kv = MemoryKeyValueStore()
    async with RealtimeHub(kv) as hub, RealtimeHub(kv) as other:
        owner = Owner(hub)
        hub.resync = owner.resync
        editor = Editor("p1")
        hub.attach("w1", "doc.md", editor)
        owner.away = True
        await kv.close()  # the channel drops: the hub resubscribes and resyncs
        await until_true(lambda: owner.attempts >= 3)
        assert RESYNCED not in editor.received
        # Meanwhile the hub still reads the channel: live edits keep arriving.
        live_edit = encode_update(b"\x00\x00")
        await until_true(lambda: hub.origin in other.live_replicas())
        await other.broadcast("w1", "doc.md", live_edit)
        await until_true(lambda: live_edit in editor.received)

        owner.away = False
        await until_true(lambda: RESYNCED in editor.received)
        attempts = owner.attempts
        await asyncio.sleep(0.5)
        assert owner.attempts == attempts  # done: no more retries
        assert editor.received.count(RESYNCED) == 1


async def test_a_newer_resubscribe_replaces_the_pending_retry() -> None:
    kv = MemoryKeyValueStore()
    async with RealtimeHub(kv) as hub:
        owner = Owner(hub)
        hub.resync = owner.resync
        editor = Editor("p1")
        hub.attach("w1", "doc.md", editor)
        owner.away = True
        for _ in range(4):
            resubscribed = hub.resubscribed
            await kv.close()
            await until_true(lambda: hub.resubscribed > resubscribed)  # noqa: B023
            await asyncio.sleep(0.1)
        owner.away = False
        await until_true(lambda: RESYNCED in editor.received)
        await asyncio.sleep(1.0)
        # One resync per document, not one per resubscribe; never two at once.
        assert editor.received.count(RESYNCED) == 1
        assert owner.most_in_flight == 1


async def test_retries_stop_once_the_document_has_no_editor_here() -> None:
    kv = MemoryKeyValueStore()
    async with RealtimeHub(kv) as hub:
        owner = Owner(hub)
        hub.resync = owner.resync
        editor = Editor("p1")
        hub.attach("w1", "doc.md", editor)
        owner.away = True
        await kv.close()
        await until_true(lambda: owner.attempts >= 2)
        hub.detach("w1", "doc.md", editor)
        await asyncio.sleep(0.3)  # a retry already waiting may still run once
        attempts = owner.attempts
        await asyncio.sleep(1.0)
        assert owner.attempts == attempts


async def test_after_a_blip_many_documents_resync_a_few_at_a_time_and_all_catch_up() -> None:
    kv = MemoryKeyValueStore()
    async with RealtimeHub(kv) as hub:
        owner = Owner(hub)
        hub.resync = owner.resync
        editors = [Editor(f"p{i}") for i in range(5 * RESYNC_CONCURRENCY)]
        for i, editor in enumerate(editors):
            hub.attach("w1", f"doc{i}.md", editor)
        await kv.close()
        await until_true(lambda: all(RESYNCED in e.received for e in editors))
        assert owner.most_in_flight == RESYNC_CONCURRENCY  # bounded, and used
        assert owner.attempts == len(editors)
