"""Reading the audit trail: platform administrators see all of it, workspace owners and
admins their workspace's. Nothing edits or deletes it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from accounts.audit import AuditEvent
from serve_apps.gateway.deps import ServicesDep
from serve_apps.gateway.routes.access import WORKSPACE_ERRORS, ReadableWorkspace

__all__ = ["router"]

router = APIRouter(tags=["audit"])


class AuditOut(BaseModel):
    id: int
    created_at: datetime
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    workspace_id: str | None
    ip: str | None
    request_id: str | None
    outcome: str
    details: dict[str, Any]

    @classmethod
    def of(cls, event: AuditEvent) -> AuditOut:
        return cls(
            id=event.id,
            created_at=event.created_at,
            actor_id=event.actor_id,
            action=event.action,
            target_type=event.target_type,
            target_id=event.target_id,
            workspace_id=event.workspace_id,
            ip=event.ip,
            request_id=event.request_id,
            outcome=event.outcome,
            details=event.details,
        )


class AuditList(BaseModel):
    items: list[AuditOut]


@router.get("/api/admin/audit", response_model=AuditList)
async def platform_audit(
    services: ServicesDep,
    actor: str | None = Query(default=None, max_length=64),
    action: str | None = Query(default=None, max_length=80),
    after: datetime | None = None,
    limit: int = Query(default=100, ge=1, le=500),
) -> AuditList:
    """Newest first. ``action`` ending in ``.`` matches a prefix (``auth.``)."""
    events = await services.security.audit.query(
        actor_id=actor, action=action, after=after, limit=limit
    )
    return AuditList(items=[AuditOut.of(event) for event in events])


@router.get(
    "/api/workspaces/{workspace_id}/audit", response_model=AuditList, responses=WORKSPACE_ERRORS
)
async def workspace_audit(
    workspace: ReadableWorkspace,
    services: ServicesDep,
    actor: str | None = Query(default=None, max_length=64),
    action: str | None = Query(default=None, max_length=80),
    after: datetime | None = None,
    limit: int = Query(default=100, ge=1, le=500),
) -> AuditList:
    events = await services.security.audit.query(
        actor_id=actor, action=action, after=after, workspace_id=workspace.id, limit=limit
    )
    return AuditList(items=[AuditOut.of(event) for event in events])
