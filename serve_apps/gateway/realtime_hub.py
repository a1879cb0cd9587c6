"""RealtimeHub: this replica's live clients, and the fan-out between replicas.

Local clients of a document get a message at once; the same frame goes on the realtime channel
(Redis pub/sub with several replicas, in-process otherwise) and every other replica delivers it
to its own clients. Workspace events (``files.changed``, agent events, ``member.removed``) arrive
on the same channel and go to the registered event sinks (Socket.IO). When the channel drops (a
Redis restart), the hub resubscribes and asks each open document to resync its clients, since
frames published meanwhile are lost. A publisher that could not publish a document's frame
announces the document as ``STALE`` once the channel is back (``KvRealtime``), and the hub
resyncs that document's clients too: a frame can be lost while this replica's subscription
stayed up. A resync that fails (the workspace's host or the store is briefly unavailable too)
is retried with backoff in the background until it succeeds or the document has no client left
here; reading the channel does not wait for it. At most ``RESYNC_CONCURRENCY`` resyncs run at
once.

Every replica pings itself through the channel; the pings of the others tell it which replicas
are alive, which is what presence (``presence.py``) reads across replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Protocol

import structlog

from actors.workspace.realtime import (
    CHANNEL,
    DOC,
    EVENT,
    PING,
    STALE,
    Frame,
    KvRealtime,
    decode_frame,
    encode_frame,
)
from collab.protocol import AWARENESS, decode_message
from collab.rooms import Peer, Rooms
from serve_apps.gateway.presence import PresenceBoard
from state.errors import StateError
from state.kv import KeyValueStore

__all__ = ["DocumentClient", "RealtimeHub"]

log = structlog.get_logger("gateway.realtime")

RESUBSCRIBE_DELAYS_S = (0.05, 0.1, 0.25, 0.5, 1.0)
SUBSCRIBE_TIMEOUT_S = 5.0
# Between attempts to resync a document after a resubscribe: doubling, capped.
RESYNC_FIRST_RETRY_S = 0.2
RESYNC_MAX_RETRY_S = 5.0
# Resyncs running at once: after a blip a replica with many documents would otherwise send a
# burst of calls to their owners all together.
RESYNC_CONCURRENCY = 8
PING_INTERVAL_S = 0.5
PING_TIMEOUT_S = 2.0
PRESENCE_REFRESH_S = 10.0
# Another replica counts as alive while its pings arrive at most this far apart.
REPLICA_TIMEOUT_S = 2.0
# A replica not heard from for this long is forgotten (it stopped counting long before).
FORGET_REPLICA_S = 60.0


class _ChannelSilent(Exception):
    """The realtime channel stopped delivering (our own pings did not come back)."""


EventSink = Callable[[Frame, dict[str, Any]], Awaitable[None]]
Resync = Callable[[str, str], Awaitable[None]]


class DocumentClient(Protocol):
    """A connected editor of one document on this replica."""

    peer_id: str
    user_id: str

    def send(self, message: bytes) -> None:
        """Queue ``message`` (never blocks; a client that cannot keep up is disconnected)."""
        ...

    def kick(self, code: int, reason: str) -> None:
        """Close the connection after what is queued."""
        ...


class RealtimeHub:
    def __init__(self, kv: KeyValueStore, *, origin: str | None = None) -> None:
        self.origin = origin or uuid.uuid4().hex
        self.rooms = Rooms()
        self._kv = kv
        self._publisher = KvRealtime(kv, origin=self.origin)
        self._clients: dict[tuple[str, str], dict[str, DocumentClient]] = {}
        self.event_sinks: list[EventSink] = []
        self.resync: Resync | None = None
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self.resubscribed = 0
        self._ping_frame = encode_frame(Frame(PING, self.origin, "", b""))
        self._last_ping_s = time.monotonic()
        self.presence = PresenceBoard(kv, replica=self.origin)
        # Other replicas' origins -> when their last ping arrived (monotonic seconds).
        self._replicas: dict[str, float] = {}
        self._presence_task: asyncio.Task[None] | None = None
        # The pending resync of each document after a resubscribe (at most one per document).
        self._resyncs: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._resync_slots = asyncio.Semaphore(RESYNC_CONCURRENCY)

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> RealtimeHub:
        self._task = asyncio.create_task(self._listen_forever(), name="realtime-hub")
        self._presence_task = asyncio.create_task(
            self._refresh_presence_forever(), name="realtime-presence"
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 5.0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        tasks = [t for t in (self._task, self._presence_task) if t is not None]
        tasks += self._resyncs.values()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._task = self._presence_task = None
        self._resyncs.clear()
        await self._publisher.aclose()
        await self.presence.clear()
        for clients in self._clients.values():
            for client in clients.values():
                client.kick(1001, "server shutting down")

    # --- rooms and presence --------------------------------------------------------------------

    async def join(self, workspace_id: str, peer: Peer) -> None:
        """Add a peer (a Socket.IO client or a document editor) to the workspace's room."""
        self.rooms.room(workspace_id).join(peer)
        await self._presence_changed(workspace_id)

    async def leave(self, workspace_id: str, peer_id: str) -> bytes | None:
        """Remove a peer; return the awareness update announcing its cursors left, if any."""
        update = self.rooms.leave(workspace_id, peer_id)
        await self._presence_changed(workspace_id)
        return update

    async def users(self, workspace_id: str) -> set[str]:
        """Who is in the workspace, on every live replica."""
        return await self.presence.users(workspace_id, self.live_replicas())

    def live_replicas(self) -> list[str]:
        """The other replicas whose pings arrived within ``REPLICA_TIMEOUT_S``."""
        cutoff = time.monotonic() - REPLICA_TIMEOUT_S
        return [origin for origin, seen in self._replicas.items() if seen >= cutoff]

    async def _presence_changed(self, workspace_id: str) -> None:
        room = self.rooms.get(workspace_id)
        await self.presence.publish(workspace_id, room.users() if room is not None else ())

    # --- documents ---------------------------------------------------------------------------

    def attach(self, workspace_id: str, path: str, client: DocumentClient) -> None:
        self._clients.setdefault((workspace_id, path), {})[client.peer_id] = client

    def detach(self, workspace_id: str, path: str, client: DocumentClient) -> None:
        clients = self._clients.get((workspace_id, path))
        if clients is not None:
            clients.pop(client.peer_id, None)
            if not clients:
                del self._clients[(workspace_id, path)]

    def clients(self, workspace_id: str, path: str) -> list[DocumentClient]:
        return list(self._clients.get((workspace_id, path), {}).values())

    def deliver(self, workspace_id: str, path: str, message: bytes, *, skip: str = "") -> None:
        """Send to this replica's clients of the document (except ``skip``)."""
        for peer_id, client in list(self._clients.get((workspace_id, path), {}).items()):
            if peer_id != skip:
                client.send(message)

    async def broadcast(
        self, workspace_id: str, path: str, message: bytes, *, skip: str = ""
    ) -> None:
        """Send to every client of the document on every replica (except ``skip``)."""
        self.deliver(workspace_id, path, message, skip=skip)
        try:
            await self._publisher.broadcast(workspace_id, path, message, skip=skip)
        except StateError as exc:
            # Other replicas' clients miss this frame; the publisher announces the document as
            # stale once the channel is back, and they resync.
            log.warning("realtime.publish_failed", error=str(exc))

    # --- events ------------------------------------------------------------------------------

    async def publish(self, workspace_id: str, event: str, data: dict[str, Any]) -> None:
        """The ``EventPublisher`` port: deliver here, then to every other replica."""
        frame = Frame(EVENT, self.origin, workspace_id, b"", event=event)
        await self._dispatch_event(frame, data)
        try:
            await self._publisher.publish(workspace_id, event, data)
        except StateError as exc:
            log.warning("realtime.publish_failed", error=str(exc))

    def kick_user(self, workspace_id: str, user_id: str, *, code: int, reason: str) -> int:
        """Disconnect this replica's document clients of ``user_id`` in the workspace."""
        kicked = 0
        for (ws, _path), clients in list(self._clients.items()):
            if ws != workspace_id:
                continue
            for client in list(clients.values()):
                if client.user_id == user_id:
                    client.kick(code, reason)
                    kicked += 1
        return kicked

    # --- internals ---------------------------------------------------------------------------

    async def _publish(self, raw: bytes) -> None:
        try:
            await self._kv.publish(CHANNEL, raw)
        except StateError as exc:
            log.warning("realtime.publish_failed", error=str(exc))

    async def _dispatch_event(self, frame: Frame, data: dict[str, Any]) -> None:
        if frame.event == "member.removed":
            user_id = str(data.get("user_id", ""))
            self.kick_user(frame.workspace_id, user_id, code=4403, reason="removed from workspace")
        for sink in list(self.event_sinks):
            try:
                await sink(frame, data)
            except Exception as exc:  # noqa: BLE001 - one failing sink must not stop the others
                log.warning("realtime.sink_failed", event=frame.event, error=repr(exc))

    async def _receive(self, raw: bytes) -> None:
        frame = decode_frame(raw)
        if frame.origin == self.origin:
            return
        if frame.kind == PING:
            await self._heard_replica(frame.origin)
        elif frame.kind == DOC:
            if (frame.workspace_id, frame.path) not in self._clients:
                return
            message = decode_message(frame.payload)
            if message.kind == AWARENESS:
                room = self.rooms.room(frame.workspace_id)
                room.awareness(frame.path).apply(message.payload)
            self.deliver(frame.workspace_id, frame.path, frame.payload, skip=frame.skip)
        elif frame.kind == STALE:
            if (frame.workspace_id, frame.path) in self._clients:
                log.info("realtime.stale_document", workspace_id=frame.workspace_id)
                self._resync_document(frame.workspace_id, frame.path)
        elif frame.kind == EVENT:
            await self._dispatch_event(frame, json.loads(frame.payload or b"{}"))

    async def _listen_forever(self) -> None:
        attempt = 0
        while True:
            try:
                async with contextlib.AsyncExitStack() as stack:
                    # Subscribing reads the server's confirmation with no deadline of its own.
                    async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                        frames = await stack.enter_async_context(self._kv.subscribe(CHANNEL))
                        if self._subscribed.is_set():
                            await self.presence.refresh()  # Redis may have lost our keys
                    if self._subscribed.is_set():
                        self.resubscribed += 1
                        log.info("realtime.resubscribed", origin=self.origin)
                        self._resync_all()
                    self._subscribed.set()
                    attempt = 0
                    await self._read_while_alive(frames)
                error = "the subscription ended"
            except (StateError, _ChannelSilent, TimeoutError) as exc:
                error = str(exc) or "subscribing timed out"
            except Exception as exc:  # this loop is the replica's only listener: it must not die
                log.exception("realtime.listener_failed")
                error = repr(exc)
            delay = RESUBSCRIBE_DELAYS_S[min(attempt, len(RESUBSCRIBE_DELAYS_S) - 1)]
            attempt += 1
            log.warning("realtime.channel_lost", error=error, retry_in_s=delay)
            await asyncio.sleep(delay)

    async def _read_while_alive(self, frames: AsyncIterator[bytes]) -> None:
        """Read frames; raise ``_ChannelSilent`` when our own pings stop coming back.

        A Redis client may reconnect a subscription silently (frames published meanwhile are
        lost) or hang on a dead socket; either way the pings stop, and the caller resubscribes
        and resyncs."""
        self._last_ping_s = time.monotonic()
        watchdog = asyncio.create_task(self._ping_forever())
        reader = asyncio.create_task(self._read(frames))
        try:
            done, _ = await asyncio.wait([watchdog, reader], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in (watchdog, reader):
                task.cancel()
            # Both may have failed together (the first error was raised above): retrieve every
            # error explicitly rather than rely on cancel() of a finished task silencing it.
            await asyncio.gather(watchdog, reader, return_exceptions=True)

    async def _read(self, frames: AsyncIterator[bytes]) -> None:
        async for raw in frames:
            if raw == self._ping_frame:
                self._last_ping_s = time.monotonic()
                continue
            try:
                await self._receive(raw)
            except (ValueError, KeyError, StateError) as exc:
                log.warning("realtime.bad_frame", error=repr(exc))

    async def _heard_replica(self, origin: str) -> None:
        now = time.monotonic()
        first = now - self._replicas.get(origin, float("-inf")) > REPLICA_TIMEOUT_S
        self._replicas[origin] = now
        if first:
            # Answer a replica we did not know (it may have just started) at once, so that it
            # counts us in presence without waiting for our next ping.
            await self._publish(self._ping_frame)
            for gone in [o for o, seen in self._replicas.items() if now - seen > FORGET_REPLICA_S]:
                del self._replicas[gone]

    async def _refresh_presence_forever(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_REFRESH_S)
            await self.presence.refresh()

    async def _ping_forever(self) -> None:
        while True:
            await self._publish(self._ping_frame)
            await asyncio.sleep(PING_INTERVAL_S)
            if time.monotonic() - self._last_ping_s > PING_TIMEOUT_S:
                raise _ChannelSilent("no ping came back")

    def _resync_all(self) -> None:
        """Start resyncing every document with clients here; a resync still pending from an
        earlier resubscribe or announcement is superseded (this one sends them everything)."""
        for document in list(self._clients):
            self._resync_document(*document)

    def _resync_document(self, workspace_id: str, path: str) -> None:
        """Start resyncing the document's clients here, superseding a pending resync of it."""
        if self.resync is None:
            return
        document = (workspace_id, path)
        pending = self._resyncs.pop(document, None)
        if pending is not None:
            pending.cancel()
        self._resyncs[document] = asyncio.create_task(
            self._resync_until_done(self.resync, workspace_id, path), name="realtime-resync"
        )

    async def _resync_until_done(self, resync: Resync, workspace_id: str, path: str) -> None:
        """Resync the document's clients, retrying with backoff while it has any here."""
        document = (workspace_id, path)
        delay_s = RESYNC_FIRST_RETRY_S
        try:
            while document in self._clients:
                try:
                    async with self._resync_slots:
                        if document not in self._clients:
                            return  # the last editor left while this waited for a slot
                        await resync(workspace_id, path)
                    return
                except Exception as exc:  # noqa: BLE001 - any failure: they would stay stale
                    log.warning(
                        "realtime.resync_failed",
                        workspace_id=workspace_id,
                        error=repr(exc),
                        retry_in_s=delay_s,
                    )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, RESYNC_MAX_RETRY_S)
        finally:
            if self._resyncs.get(document) is asyncio.current_task():
                del self._resyncs[document]
