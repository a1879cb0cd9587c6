"""Socket.IO at ``/socket.io``: workspace rooms, presence, cursors and workspace events.

Connect with ``auth: {token: <access token>}``. Events a client sends: ``join`` /
``leave`` ``{workspace_id}`` (acknowledged with ``{ok, role, users}`` or ``{ok: false, error}``)
and ``cursor`` ``{workspace_id, path, ...}`` (relayed to the room). Events a client receives:
``presence`` ``{workspace_id, user_id, state: joined|left, users}``, ``cursor``,
``files.changed``, agent events, ``member.removed`` (then the removed user is disconnected
from the room) and ``auth.revoked`` ``{code, reason}``: the connection's credential was revoked
(sign-out everywhere, password change, API-key revocation...; checked every few seconds, see
``live_auth.py``) and the server disconnects it. ``users`` (in the ``join`` answer and in
``presence``) lists everyone in the workspace on every replica, including people who only have
a document open (see ``presence.py``); ``state: left`` is about one connection: the user may
still be listed.

With ``redis.url`` set, ``AsyncRedisManager`` carries emits across replicas. Events from the
realtime channel arrive at every replica, so each emits them to its own clients only
(``ignore_queue``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import socketio
import structlog

from accounts.errors import AccountError
from actors.workspace.api import WorkspaceError
from actors.workspace.realtime import Frame
from collab.rooms import Peer
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.live_auth import LiveAuth
from serve_apps.gateway.realtime_hub import RealtimeHub
from serve_apps.gateway.routes.access import require_scope
from serve_apps.gateway.services import Services

__all__ = ["SocketIOGateway", "room_of"]

log = structlog.get_logger("gateway.socketio")


def room_of(workspace_id: str) -> str:
    return f"ws:{workspace_id}"


class SocketIOGateway:
    """The Socket.IO server of one replica; ``asgi`` is mounted at ``/socket.io``."""

    def __init__(self, config: GatewayConfig, *, channel_prefix: str = "") -> None:
        manager: Any = None
        if config.redis.url is not None:
            manager = socketio.AsyncRedisManager(
                config.redis.url, channel=f"{channel_prefix}vibecode-socketio"
            )
        origins: Any = config.gateway.cors_allow_origins or []
        self.server = socketio.AsyncServer(
            async_mode="asgi", client_manager=manager, cors_allowed_origins=origins
        )
        self.asgi = socketio.ASGIApp(self.server, socketio_path=None)
        self._services: Services | None = None
        # sid -> workspace ids joined, on this replica.
        self._joined: dict[str, set[str]] = {}
        # sid -> the task that disconnects it once its credential is revoked.
        self._watchdogs: dict[str, asyncio.Task[None]] = {}
        self._register()

    def bind(self, services: Services) -> None:
        """Called once the replica's services are open (the app's lifespan)."""
        self._services = services
        if services.realtime is not None:
            services.realtime.event_sinks.append(self._on_event)

    @property
    def hub(self) -> RealtimeHub:
        services = self._services
        if services is None or services.realtime is None:
            raise RuntimeError("Socket.IO used before the replica's services opened")
        return services.realtime

    def _register(self) -> None:
        sio = self.server
        sio.on("connect", self._connect)
        sio.on("disconnect", self._disconnect)
        sio.on("join", self._join)
        sio.on("leave", self._leave)
        sio.on("cursor", self._cursor)

    async def _connect(self, sid: str, _environ: dict[str, Any], auth: Any = None) -> None:
        services = self._services
        token = auth.get("token") if isinstance(auth, dict) else None
        if services is None or not isinstance(token, str):
            raise socketio.exceptions.ConnectionRefusedError("authentication required")
        try:
            principal = await services.accounts.authenticate(token)
            require_scope(principal, write=False)
        except AccountError as exc:
            raise socketio.exceptions.ConnectionRefusedError("invalid token") from exc
        await self.server.save_session(sid, {"user_id": principal.user.id})
        self._joined[sid] = set()
        self._watchdogs[sid] = asyncio.create_task(
            self._watch(sid, LiveAuth(services, token)), name=f"socketio-auth-{sid}"
        )

    async def _watch(self, sid: str, auth: LiveAuth) -> None:
        refusal = await auth.watch()
        log.info("socketio.revoked", sid=sid, reason=refusal.reason)
        payload = {"code": refusal.code, "reason": refusal.reason}
        await self.server.emit("auth.revoked", payload, to=sid, ignore_queue=True)
        await self.server.disconnect(sid, ignore_queue=True)

    async def _user(self, sid: str) -> str:
        session = await self.server.get_session(sid)
        return str(session["user_id"])

    async def _join(self, sid: str, data: Any) -> dict[str, Any]:
        workspace_id = data.get("workspace_id") if isinstance(data, dict) else None
        if not isinstance(workspace_id, str) or self._services is None:
            return {"ok": False, "error": "workspace_id required"}
        user_id = await self._user(sid)
        try:
            record = await self._services.catalog.get_for(user_id, workspace_id)
        except WorkspaceError:
            return {"ok": False, "error": "not_found"}
        await self.hub.join(workspace_id, Peer(sid, user_id, record.role != "viewer"))
        self._joined.setdefault(sid, set()).add(workspace_id)
        await self.server.enter_room(sid, room_of(workspace_id))
        users = sorted(await self.hub.users(workspace_id))
        await self._announce(workspace_id, user_id, "joined", users, skip_sid=sid)
        return {"ok": True, "role": record.role, "users": users}

    async def _announce(
        self, workspace_id: str, user_id: str, state: str, users: list[str], **options: Any
    ) -> None:
        payload = {"workspace_id": workspace_id, "user_id": user_id, "state": state, "users": users}
        await self.server.emit("presence", payload, room=room_of(workspace_id), **options)

    async def _leave(self, sid: str, data: Any) -> dict[str, Any]:
        workspace_id = data.get("workspace_id") if isinstance(data, dict) else None
        if isinstance(workspace_id, str) and workspace_id in self._joined.get(sid, set()):
            await self._part(sid, workspace_id)
        return {"ok": True}

    async def _part(self, sid: str, workspace_id: str) -> None:
        self._joined.get(sid, set()).discard(workspace_id)
        await self.hub.leave(workspace_id, sid)
        await self.server.leave_room(sid, room_of(workspace_id))
        user_id = await self._user(sid)
        users = sorted(await self.hub.users(workspace_id))
        await self._announce(workspace_id, user_id, "left", users)

    async def _cursor(self, sid: str, data: Any) -> None:
        workspace_id = data.get("workspace_id") if isinstance(data, dict) else None
        if not isinstance(workspace_id, str) or workspace_id not in self._joined.get(sid, set()):
            return
        payload = {**data, "user_id": await self._user(sid)}
        await self.server.emit("cursor", payload, room=room_of(workspace_id), skip_sid=sid)

    async def _disconnect(self, sid: str, *_args: Any) -> None:
        watchdog = self._watchdogs.pop(sid, None)
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
        for workspace_id in list(self._joined.pop(sid, set())):
            await self.hub.leave(workspace_id, sid)
            try:
                user_id = await self._user(sid)
            except KeyError:
                continue
            users = sorted(await self.hub.users(workspace_id))
            await self._announce(workspace_id, user_id, "left", users)

    async def _on_event(self, frame: Frame, data: dict[str, Any]) -> None:
        """An event from the realtime channel: emit to this replica's clients in the room."""
        payload = {"workspace_id": frame.workspace_id, **data}
        await self.server.emit(
            frame.event, payload, room=room_of(frame.workspace_id), ignore_queue=True
        )
        if frame.event == "member.removed":
            removed = str(data.get("user_id", ""))
            room = self.hub.rooms.get(frame.workspace_id)
            for peer in list(room.peers.values()) if room is not None else []:
                sid = peer.peer_id
                if peer.user_id == removed and isinstance(sid, str) and sid in self._joined:
                    await self._part(sid, frame.workspace_id)
                    await self.server.disconnect(sid, ignore_queue=True)
