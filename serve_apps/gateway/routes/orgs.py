"""Organisations, their members, and invitations (to an organisation or a workspace)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from accounts.orgs import OrgRecord
from serve_apps.gateway.authorization import audit_context
from serve_apps.gateway.deps import CurrentPrincipal, ServicesDep
from serve_apps.gateway.routes.access import WORKSPACE_ERRORS, ReadableWorkspace

__all__ = ["router"]

router = APIRouter(tags=["organisations"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class CreateOrg(Strict):
    name: str = Field(min_length=1, max_length=200)


class OrgOut(BaseModel):
    id: str
    name: str
    role: str
    created_at: datetime

    @classmethod
    def of(cls, record: OrgRecord) -> OrgOut:
        return cls(id=record.id, name=record.name, role=record.role, created_at=record.created_at)


class OrgList(BaseModel):
    items: list[OrgOut]


class OrgMemberOut(BaseModel):
    user_id: str
    email: str
    name: str
    role: str


class OrgMemberList(BaseModel):
    items: list[OrgMemberOut]


class OrgInvite(Strict):
    email: str = Field(min_length=3, max_length=320)
    role: Literal["admin", "member"] = "member"


class WorkspaceInvite(Strict):
    email: str = Field(min_length=3, max_length=320)
    role: Literal["admin", "editor", "viewer"] = "viewer"


class InvitationOut(BaseModel):
    id: str
    email: str
    role: str


class AcceptBody(Strict):
    token: str = Field(min_length=1, max_length=2048)


class AcceptedOut(BaseModel):
    kind: str
    target_id: str
    role: str


ORG_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "Missing or invalid credentials (problem+json)."},
    403: {"description": "The role does not allow it (problem+json)."},
    404: {"description": "No such organisation, or not a member (problem+json)."},
}


@router.post("/api/orgs", status_code=201, response_model=OrgOut, responses=ORG_ERRORS)
async def create_org(body: CreateOrg, principal: CurrentPrincipal, services: ServicesDep) -> OrgOut:
    return OrgOut.of(await services.security.orgs.create(principal.user.id, name=body.name))


@router.get("/api/orgs", response_model=OrgList, responses=ORG_ERRORS)
async def list_orgs(principal: CurrentPrincipal, services: ServicesDep) -> OrgList:
    records = await services.security.orgs.list_for(principal.user.id)
    return OrgList(items=[OrgOut.of(record) for record in records])


@router.get("/api/orgs/{org_id}", response_model=OrgOut, responses=ORG_ERRORS)
async def get_org(org_id: str, principal: CurrentPrincipal, services: ServicesDep) -> OrgOut:
    return OrgOut.of(await services.security.orgs.get_for(principal.user.id, org_id))


@router.get("/api/orgs/{org_id}/members", response_model=OrgMemberList, responses=ORG_ERRORS)
async def list_org_members(
    org_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> OrgMemberList:
    members = await services.security.orgs.members(principal.user.id, org_id)
    return OrgMemberList(
        items=[
            OrgMemberOut(user_id=m.user_id, email=m.email, name=m.name, role=m.role)
            for m in members
        ]
    )


@router.delete("/api/orgs/{org_id}/members/{user_id}", status_code=204, responses=ORG_ERRORS)
async def remove_org_member(
    org_id: str,
    user_id: str,
    request: Request,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> Response:
    await services.security.orgs.remove_member(principal.user.id, org_id, user_id)
    await services.security.audit.record(
        "org.member_removed",
        audit_context(request, principal),
        target_type="user",
        target_id=user_id,
        details={"org_id": org_id},
    )
    return Response(status_code=204)


@router.post(
    "/api/orgs/{org_id}/invitations",
    status_code=201,
    response_model=InvitationOut,
    responses=ORG_ERRORS,
)
async def invite_to_org(
    org_id: str,
    body: OrgInvite,
    request: Request,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> InvitationOut:
    org = await services.security.orgs.get_for(principal.user.id, org_id)
    invitation_id = await services.security.orgs.invite(
        kind="org",
        target_id=org.id,
        target_name=org.name,
        email=body.email,
        role=body.role,
        by=principal.user.id,
    )
    await services.security.audit.record(
        "org.invitation_sent",
        audit_context(request, principal),
        target_type="invitation",
        target_id=invitation_id,
        details={"org_id": org.id, "role": body.role},
    )
    return InvitationOut(id=invitation_id, email=body.email.strip().lower(), role=body.role)


@router.post(
    "/api/workspaces/{workspace_id}/invitations",
    status_code=201,
    response_model=InvitationOut,
    responses=WORKSPACE_ERRORS,
)
async def invite_to_workspace(
    body: WorkspaceInvite,
    request: Request,
    workspace: ReadableWorkspace,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> InvitationOut:
    invitation_id = await services.security.orgs.invite(
        kind="workspace",
        target_id=workspace.id,
        target_name=workspace.name,
        email=body.email,
        role=body.role,
        by=principal.user.id,
    )
    await services.security.audit.record(
        "workspace.invitation_sent",
        audit_context(request, principal),
        target_type="invitation",
        target_id=invitation_id,
        workspace_id=workspace.id,
        details={"role": body.role},
    )
    return InvitationOut(id=invitation_id, email=body.email.strip().lower(), role=body.role)


@router.post("/api/invitations/accept", response_model=AcceptedOut, responses=ORG_ERRORS)
async def accept_invitation(
    body: AcceptBody, request: Request, principal: CurrentPrincipal, services: ServicesDep
) -> AcceptedOut:
    accepted = await services.security.orgs.accept(principal.user.id, body.token)
    await services.security.audit.record(
        "invitation.accepted",
        audit_context(request, principal),
        target_type=accepted.kind,
        target_id=accepted.target_id,
        workspace_id=accepted.target_id if accepted.kind == "workspace" else None,
        details={"role": accepted.role},
    )
    return AcceptedOut(kind=accepted.kind, target_id=accepted.target_id, role=accepted.role)
