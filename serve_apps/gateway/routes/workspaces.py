"""Workspaces: create from a template, list, get, rename, delete, and their members."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import structlog
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from accounts.service import Principal
from actors.workspace.catalog import MemberRecord, WorkspaceRecord
from actors.workspace.templates import template_files
from serve_apps.gateway.authorization import audit_context
from serve_apps.gateway.deps import CurrentPrincipal, ServicesDep
from serve_apps.gateway.routes.access import (
    WORKSPACE_ERRORS,
    ReadableWorkspace,
    author_of,
    require_scope,
)
from serve_apps.gateway.services import Services

__all__ = ["router"]

log = structlog.get_logger("gateway.workspaces")

router = APIRouter(prefix="/api/workspaces", tags=["workspaces"])

TemplateName = Literal["blank", "python", "static-web"]
GrantableRole = Literal["admin", "editor", "viewer"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class CreateWorkspaceRequest(Strict):
    name: str = Field(min_length=1, max_length=200)
    template: TemplateName = "blank"


class RenameWorkspaceRequest(Strict):
    name: str = Field(min_length=1, max_length=200)


class SetMemberRequest(Strict):
    email: str = Field(min_length=3, max_length=320)
    role: GrantableRole


class TransferRequest(Strict):
    """The member who becomes the owner: by user id or by email, exactly one of them."""

    user_id: str | None = Field(default=None, min_length=1, max_length=64)
    email: str | None = Field(default=None, min_length=3, max_length=320)

    @model_validator(mode="after")
    def _exactly_one(self) -> TransferRequest:
        if (self.user_id is None) == (self.email is None):
            raise ValueError("give exactly one of user_id and email")
        return self


class WorkspaceOut(BaseModel):
    id: str
    name: str
    template: str
    created_at: datetime
    updated_at: datetime
    role: str
    owner_id: str
    head_version: int
    total_bytes: int

    @classmethod
    def of(cls, record: WorkspaceRecord) -> WorkspaceOut:
        return cls(
            id=record.id,
            name=record.name,
            template=record.template,
            created_at=record.created_at,
            updated_at=record.updated_at,
            role=record.role,
            owner_id=record.owner_id,
            head_version=record.head_version,
            total_bytes=record.total_bytes,
        )


class WorkspaceList(BaseModel):
    items: list[WorkspaceOut]


class MemberOut(BaseModel):
    user_id: str
    email: str
    name: str
    role: str
    created_at: datetime

    @classmethod
    def of(cls, member: MemberRecord) -> MemberOut:
        return cls(
            user_id=member.user_id,
            email=member.email,
            name=member.name,
            role=member.role,
            created_at=member.created_at,
        )


class MemberList(BaseModel):
    items: list[MemberOut]


async def _audit_workspace(
    services: Services,
    request: Request,
    principal: Principal,
    action: str,
    workspace_id: str,
    *,
    member_id: str | None = None,
    **details: str,
) -> None:
    """Audit ``action`` by the caller on the workspace itself, or on its member ``member_id``."""
    target_type, target_id = (
        ("workspace", workspace_id) if member_id is None else ("user", member_id)
    )
    await services.security.audit.record(
        action,
        audit_context(request, principal),
        target_type=target_type,
        target_id=target_id,
        workspace_id=workspace_id,
        details=details,
    )


@router.post("", status_code=201, response_model=WorkspaceOut, responses=WORKSPACE_ERRORS)
async def create_workspace(
    body: CreateWorkspaceRequest,
    request: Request,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> WorkspaceOut:
    """Create a workspace whose first version holds the template's files."""
    require_scope(principal, write=True)
    files: dict[str, bytes | None] = dict(template_files(body.template, name=body.name.strip()))
    record = await services.catalog.create(
        principal.user.id, name=body.name, template=body.template
    )
    try:
        await services.writer.apply_batch(
            record.id,
            files,
            author=author_of(principal, request),
            message=f"Created from template {body.template}",
            replace_all=True,
        )
    except Exception:
        # A workspace without its files must not linger in the list; the purge reclaims it.
        await services.catalog.mark_deleted(record.id)
        raise
    log.info("workspace.created", workspace_id=record.id, template=body.template)
    return WorkspaceOut.of(await services.catalog.get_for(principal.user.id, record.id))


@router.get("", response_model=WorkspaceList, responses=WORKSPACE_ERRORS)
async def list_workspaces(principal: CurrentPrincipal, services: ServicesDep) -> WorkspaceList:
    """The caller's workspaces (any role), newest first."""
    require_scope(principal, write=False)
    records = await services.catalog.list_for(principal.user.id)
    return WorkspaceList(items=[WorkspaceOut.of(record) for record in records])


@router.get("/{workspace_id}", response_model=WorkspaceOut, responses=WORKSPACE_ERRORS)
async def get_workspace(workspace: ReadableWorkspace) -> WorkspaceOut:
    return WorkspaceOut.of(workspace)


@router.patch("/{workspace_id}", response_model=WorkspaceOut, responses=WORKSPACE_ERRORS)
async def rename_workspace(
    workspace_id: str,
    body: RenameWorkspaceRequest,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> WorkspaceOut:
    require_scope(principal, write=True)
    record = await services.catalog.rename(principal.user.id, workspace_id, name=body.name)
    return WorkspaceOut.of(record)


@router.delete("/{workspace_id}", status_code=204, responses=WORKSPACE_ERRORS)
async def delete_workspace(
    workspace_id: str, request: Request, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    """Soft-delete (owner or admin): gone at once for everyone; purged after a grace period."""
    require_scope(principal, write=True)
    await services.catalog.soft_delete(principal.user.id, workspace_id)
    await _audit_workspace(services, request, principal, "workspace.deleted", workspace_id)
    await services.writer.close(workspace_id)
    log.info("workspace.deleted", workspace_id=workspace_id)
    return Response(status_code=204)


@router.get("/{workspace_id}/members", response_model=MemberList, responses=WORKSPACE_ERRORS)
async def list_members(
    workspace_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> MemberList:
    require_scope(principal, write=False)
    members = await services.catalog.list_members(principal.user.id, workspace_id)
    return MemberList(items=[MemberOut.of(member) for member in members])


@router.put("/{workspace_id}/members", response_model=MemberOut, responses=WORKSPACE_ERRORS)
async def set_member(
    workspace_id: str,
    body: SetMemberRequest,
    request: Request,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> MemberOut:
    """Add a registered user by email with a role, or change a member's role (owner/admin)."""
    require_scope(principal, write=True)
    member = await services.catalog.set_member(
        principal.user.id, workspace_id, email=body.email, role=body.role
    )
    await _audit_workspace(
        services,
        request,
        principal,
        "workspace.member_role_set",
        workspace_id,
        member_id=member.user_id,
        role=member.role,
    )
    return MemberOut.of(member)


@router.delete("/{workspace_id}/members/{user_id}", status_code=204, responses=WORKSPACE_ERRORS)
async def remove_member(
    workspace_id: str,
    user_id: str,
    request: Request,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> Response:
    require_scope(principal, write=True)
    await services.catalog.remove_member(principal.user.id, workspace_id, user_id)
    await _audit_workspace(
        services, request, principal, "workspace.member_removed", workspace_id, member_id=user_id
    )
    if services.realtime is not None:  # Their live connections close, on every replica.
        await services.realtime.publish(workspace_id, "member.removed", {"user_id": user_id})
    return Response(status_code=204)


@router.post("/{workspace_id}/transfer", response_model=WorkspaceOut, responses=WORKSPACE_ERRORS)
async def transfer_ownership(
    workspace_id: str,
    body: TransferRequest,
    request: Request,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> WorkspaceOut:
    """Hand the workspace to another member (owner only, from a signed-in session).

    The new owner must already be a member (invite them first); the previous owner stays on as
    an admin. The answer is the workspace as the caller now sees it."""
    require_scope(principal, write=True)
    record, new_owner = await services.catalog.transfer_ownership(
        principal.user.id, workspace_id, new_owner_id=body.user_id, new_owner_email=body.email
    )
    await _audit_workspace(
        services,
        request,
        principal,
        "workspace.ownership_transferred",
        workspace_id,
        member_id=new_owner.user_id,
        previous_owner_role=record.role,
    )
    log.info("workspace.transferred", workspace_id=workspace_id)
    return WorkspaceOut.of(record)
