"""Workspace environment secrets: set, list names, delete. Values never come back."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from accounts.vault import SecretInfo
from serve_apps.gateway.authorization import audit_context
from serve_apps.gateway.deps import CurrentPrincipal, ServicesDep
from serve_apps.gateway.routes.access import WORKSPACE_ERRORS, ReadableWorkspace

__all__ = ["router"]

router = APIRouter(prefix="/api/workspaces", tags=["secrets"])


class SecretIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(max_length=64 * 1024)


class SecretOut(BaseModel):
    name: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, info: SecretInfo) -> SecretOut:
        return cls(name=info.name, created_at=info.created_at, updated_at=info.updated_at)


class SecretList(BaseModel):
    items: list[SecretOut]


@router.get("/{workspace_id}/secrets", response_model=SecretList, responses=WORKSPACE_ERRORS)
async def list_secrets(workspace: ReadableWorkspace, services: ServicesDep) -> SecretList:
    """Names only: a value is never returned after it is set."""
    infos = await services.security.secrets.list_secrets(workspace.id)
    return SecretList(items=[SecretOut.of(info) for info in infos])


@router.put("/{workspace_id}/secrets/{name}", response_model=SecretOut, responses=WORKSPACE_ERRORS)
async def put_secret(
    name: str,
    body: SecretIn,
    request: Request,
    response: Response,
    workspace: ReadableWorkspace,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> SecretOut:
    """Create (201) or replace (200) a secret; it reaches commands that ask for it by name."""
    info, created = await services.security.secrets.put(
        workspace.id, name, body.value, actor_id=principal.user.id
    )
    response.status_code = 201 if created else 200
    await services.security.audit.record(
        "secret.written",
        audit_context(request, principal),
        target_type="secret",
        target_id=name,
        workspace_id=workspace.id,
        details={"created": created},
    )
    return SecretOut.of(info)


@router.delete("/{workspace_id}/secrets/{name}", status_code=204, responses=WORKSPACE_ERRORS)
async def delete_secret(
    name: str,
    request: Request,
    workspace: ReadableWorkspace,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> Response:
    await services.security.secrets.delete(workspace.id, name)
    await services.security.audit.record(
        "secret.deleted",
        audit_context(request, principal),
        target_type="secret",
        target_id=name,
        workspace_id=workspace.id,
    )
    return Response(status_code=204)
