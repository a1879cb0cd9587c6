"""The Yjs-protocol WebSocket of one document: ``/collab/{workspace_id}/{path}``.

A stock ``y-websocket`` provider connects with ``serverUrl = ws://host/collab/{workspace_id}``,
room name = the file path and ``params: {token}`` (browsers cannot set headers on a WebSocket).
Sync messages go to the session that owns the workspace, which makes updates durable before it
answers; only then are they fanned out to the other editors (on every replica). Awareness is
ephemeral and fanned out here. Viewers receive everything; their edits are answered with the
y-protocols "permission denied" message. ``?ack=1`` (our Python clients) adds an ``ACK`` message
once the client's updates are durable.

Close codes: 4401 bad token (also once it is revoked while open: ``live_auth.py`` re-checks it
every few seconds), 4404 not a member (or no such workspace), 4403 removed from the workspace,
4400 malformed message or path, 1011 the workspace did not answer (reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from accounts.errors import AccountError
from actors.workspace.api import InvalidPath, WorkspaceError, WorkspaceNotFound
from actors.workspace.catalog import can_write
from actors.workspace.collab_port import LiveCollab
from actors.workspace.live import DocumentNotText, InvalidCollabMessage
from collab.errors import MalformedMessage
from collab.protocol import AWARENESS, SYNC, decode_message, encode_ack, encode_awareness
from collab.protocol import encode_sync_step1 as _step1
from collab.rooms import Peer
from serve_apps.gateway.live_auth import LiveAuth
from serve_apps.gateway.realtime_hub import RealtimeHub
from serve_apps.gateway.routes.access import WRITE_SCOPE, require_scope
from serve_apps.gateway.services import Services

__all__ = ["CollabClient", "router"]

log = structlog.get_logger("gateway.collab")
router = APIRouter(tags=["realtime"])

# A client whose outgoing queue grows past this is too slow: it is disconnected and resyncs.
MAX_QUEUED_MESSAGES = 10_000
_EMPTY_STATE_VECTOR = b"\x00"


class CollabClient:
    """One WebSocket editor: messages to it go through a queue drained by its sender task."""

    def __init__(self, websocket: WebSocket, user_id: str) -> None:
        self.peer_id = uuid.uuid4().hex
        self.user_id = user_id
        self._websocket = websocket
        self._queue: asyncio.Queue[bytes | tuple[int, str]] = asyncio.Queue()

    def send(self, message: bytes) -> None:
        if self._queue.qsize() >= MAX_QUEUED_MESSAGES:
            self.kick(1013, "too slow")
            return
        self._queue.put_nowait(message)

    def kick(self, code: int, reason: str) -> None:
        self._queue.put_nowait((code, reason))

    async def run_sender(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, tuple):
                    await self._websocket.close(code=item[0], reason=item[1])
                    return
                await self._websocket.send_bytes(item)
            except (WebSocketDisconnect, RuntimeError, OSError):
                return  # The client is gone; the receive loop sees the disconnect.


async def _refuse(websocket: WebSocket, code: int, reason: str) -> None:
    await websocket.accept()
    await websocket.close(code=code, reason=reason)


@router.websocket("/collab/{workspace_id}/{path:path}")
async def collab_socket(websocket: WebSocket, workspace_id: str, path: str) -> None:
    services: Services = websocket.app.state.services
    hub, live = services.realtime, services.collab
    if hub is None or live is None:
        await _refuse(websocket, 1011, "live collaboration is not available")
        return
    token = websocket.query_params.get("token", "")
    try:
        principal = await services.accounts.authenticate(token)
        require_scope(principal, write=False)
    except AccountError:
        await _refuse(websocket, 4401, "invalid or missing token")
        return
    try:
        record = await services.catalog.get_for(principal.user.id, workspace_id)
    except WorkspaceError:
        await _refuse(websocket, 4404, "no such workspace")
        return
    writer = can_write(record.role) and principal.has_scope(WRITE_SCOPE)
    await websocket.accept()
    client = CollabClient(websocket, principal.user.id)
    # Only the credential: a removed member is kicked at once by the hub (``member.removed``),
    # and editors are the most numerous connections (a role check is a query every interval).
    auth = LiveAuth(services, token)
    await _serve(websocket, client, hub, live, workspace_id, path, can_edit=writer, auth=auth)


async def _watch(client: CollabClient, auth: LiveAuth) -> None:
    refusal = await auth.watch()
    client.kick(refusal.code, refusal.reason)


async def _serve(
    websocket: WebSocket,
    client: CollabClient,
    hub: RealtimeHub,
    live: LiveCollab,
    workspace_id: str,
    path: str,
    *,
    can_edit: bool,
    auth: LiveAuth,
) -> None:
    want_ack = websocket.query_params.get("ack") == "1"
    sender = asyncio.create_task(client.run_sender(), name=f"collab-send-{client.peer_id}")
    watchdog = asyncio.create_task(_watch(client, auth), name=f"collab-auth-{client.peer_id}")
    try:
        await hub.join(workspace_id, Peer(client.peer_id, client.user_id, can_edit, path=path))
        room = hub.rooms.room(workspace_id)
        hub.attach(workspace_id, path, client)
        client.send(await live.collab_open(workspace_id, path))
        awareness = room.awareness(path)
        if len(awareness):
            client.send(encode_awareness(awareness.encode()))
        while not sender.done():
            receive = asyncio.ensure_future(websocket.receive())
            await asyncio.wait([receive, sender], return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():
                receive.cancel()
                break
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("bytes")
            if data is None:
                continue
            await _handle(client, hub, live, workspace_id, path, data, can_edit, want_ack)
    except (InvalidPath, DocumentNotText, InvalidCollabMessage, MalformedMessage) as exc:
        detail = getattr(exc, "detail", str(exc))
        client.kick(4400, detail[:120])
    except WorkspaceNotFound:
        client.kick(4404, "no such workspace")
    except WorkspaceError as exc:
        log.warning("collab.unavailable", workspace_id=workspace_id, error=exc.detail)
        client.kick(1011, "workspace unavailable; reconnect")
    except WebSocketDisconnect:
        pass
    except Exception:
        # Unexpected (a storage failure, a bug): the client reconnects and resyncs, and what it
        # sent that was not acknowledged is sent again.
        log.exception("collab.failed", workspace_id=workspace_id)
        client.kick(1011, "server error; reconnect")
    finally:
        watchdog.cancel()
        hub.detach(workspace_id, path, client)
        gone = await hub.leave(workspace_id, client.peer_id)
        if gone is not None:
            await hub.broadcast(workspace_id, path, encode_awareness(gone))
        if not sender.done():
            client.kick(1000, "bye")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(sender), 2.0)
        sender.cancel()
        await asyncio.wait([sender, watchdog])


async def _handle(
    client: CollabClient,
    hub: RealtimeHub,
    live: LiveCollab,
    workspace_id: str,
    path: str,
    data: bytes,
    can_edit: bool,
    want_ack: bool,
) -> None:
    message = decode_message(data)
    if message.kind == AWARENESS:
        room = hub.rooms.room(workspace_id)
        if room.apply_awareness(client.peer_id, path, message.payload):
            await hub.broadcast(workspace_id, path, data, skip=client.peer_id)
        return
    if message.kind != SYNC:
        return
    reply = await live.collab_receive(
        workspace_id, path, data, user_id=client.user_id, can_write=can_edit
    )
    for answer in reply.replies:
        client.send(answer)
    # Published by the owner: it reaches every replica's clients (this one's too) that way.
    if reply.broadcast is not None and not reply.published:
        await hub.broadcast(workspace_id, path, reply.broadcast, skip=client.peer_id)
    if want_ack and reply.acked:
        client.send(encode_ack(reply.acked))


async def resync_document(hub: RealtimeHub, live: LiveCollab, workspace_id: str, path: str) -> None:
    """Send this replica's clients of the document everything (after fan-out frames were lost).

    The full state as a sync step 2 (Yjs ignores what a client already has), plus the owner's
    step 1 so that clients send back anything the owner lacks.
    """
    reply = await live.collab_receive(
        workspace_id, path, _step1(_EMPTY_STATE_VECTOR), user_id="", can_write=False
    )
    step1 = await live.collab_open(workspace_id, path)
    for answer in reply.replies:
        hub.deliver(workspace_id, path, answer)
    hub.deliver(workspace_id, path, step1)
