"""Wires a replica's realtime parts together once its services are open."""

from __future__ import annotations

from serve_apps.gateway.routes.collab import resync_document
from serve_apps.gateway.services import Services
from serve_apps.gateway.socketio_server import SocketIOGateway

__all__ = ["install_realtime"]


def install_realtime(services: Services, socketio_gateway: SocketIOGateway) -> None:
    """Socket.IO gets the hub's events; the hub resyncs documents through the owners."""
    socketio_gateway.bind(services)
    hub, live = services.realtime, services.collab
    if hub is None or live is None:
        return

    async def resync(workspace_id: str, path: str) -> None:
        await resync_document(hub, live, workspace_id, path)

    hub.resync = resync
