"""Operator routes: what the platform is holding right now."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from accounts.errors import PermissionDenied
from serve_apps.gateway.deps import CurrentPrincipal, ServicesDep

__all__ = ["router"]

router = APIRouter(prefix="/api/admin", tags=["admin"])


class SessionOut(BaseModel):
    workspace_id: str
    host: str
    node_id: str | None
    opened_at: datetime
    last_used_at: datetime
    writes: int
    lease_epoch: int
    head_version: int


class SessionsResponse(BaseModel):
    items: list[SessionOut]


@router.get("/sessions", response_model=SessionsResponse)
async def list_sessions(principal: CurrentPrincipal, services: ServicesDep) -> SessionsResponse:
    """Every open workspace session with the host actor and node that hold it (admins only)."""
    if not principal.user.is_admin or not principal.has_scope("admin"):
        raise PermissionDenied("Only platform administrators may list sessions.")
    sessions = await services.writer.sessions()
    items = [
        SessionOut(
            workspace_id=s.workspace_id,
            host=s.host,
            node_id=s.node_id,
            opened_at=s.opened_at,
            last_used_at=s.last_used_at,
            writes=s.writes,
            lease_epoch=s.lease_epoch,
            head_version=s.head_version,
        )
        for s in sorted(sessions, key=lambda s: (s.host, s.workspace_id))
    ]
    return SessionsResponse(items=items)
