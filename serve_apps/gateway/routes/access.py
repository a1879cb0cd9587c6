"""Who may do what to a workspace: API-key scopes, membership (404 otherwise) and role.

The decision is ``accounts.policy``'s: the app-wide policy check (``authorization``) runs first
with each route's declared action; these dependencies hand the handler the workspace's record
(loaded fresh) or, for handlers that need only its id, the id (checked against the role the
policy check just looked up, without another query), and re-check with the same policy for
handlers that are reused outside a declared route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from accounts.errors import PermissionDenied
from accounts.policy import can
from accounts.service import Principal
from actors.workspace.api import Author
from actors.workspace.catalog import WorkspaceRecord
from serve_apps.gateway.deps import CurrentPrincipal, ServicesDep

__all__ = [
    "WORKSPACE_ERRORS",
    "ReadableWorkspace",
    "ReadableWorkspaceId",
    "WritableWorkspace",
    "WritableWorkspaceId",
    "author_of",
    "require_scope",
]

READ_SCOPE = "workspaces:read"
WRITE_SCOPE = "workspaces:write"

WORKSPACE_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "Missing, invalid or expired credentials (problem+json)."},
    403: {"description": "The API key lacks the scope, or the role is read-only (problem+json)."},
    404: {"description": "No such workspace, or the caller is not a member (problem+json)."},
}


def require_scope(principal: Principal, *, write: bool) -> None:
    """Raise ``PermissionDenied`` unless the credential carries the scope (write implies read)."""
    if principal.has_scope(WRITE_SCOPE) or (not write and principal.has_scope(READ_SCOPE)):
        return
    scope = WRITE_SCOPE if write else READ_SCOPE
    raise PermissionDenied(f"This API key lacks the {scope!r} scope.")


def _require_role(role: str, *, write: bool) -> None:
    """Raise ``PermissionDenied`` unless ``role`` may change files (``write``) or read them."""
    if write and not can(role, "edit"):
        raise PermissionDenied("Your role in this workspace is read-only.")
    if not write and not can(role, "read"):
        raise PermissionDenied("Your role in this workspace does not allow reading it.")


async def _member_record(
    workspace_id: str, principal: Principal, services: ServicesDep, *, write: bool
) -> WorkspaceRecord:
    """The workspace as the caller sees it (its head version, name ... as of now), checked."""
    require_scope(principal, write=write)
    record = await services.catalog.get_for(principal.user.id, workspace_id)
    _require_role(record.role, write=write)
    return record


async def readable_workspace(
    workspace_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> WorkspaceRecord:
    """The workspace, if the caller is a member; ``WorkspaceNotFound`` (404) otherwise."""
    return await _member_record(workspace_id, principal, services, write=False)


async def writable_workspace(
    workspace_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> WorkspaceRecord:
    """As ``readable_workspace``, and the caller's role may change files (403 for viewers)."""
    return await _member_record(workspace_id, principal, services, write=True)


async def readable_workspace_id(
    workspace_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> str:
    """As ``readable_workspace``, for handlers that need only the id (no record is loaded)."""
    require_scope(principal, write=False)
    _require_role(await services.roles.role_of(principal.user.id, workspace_id), write=False)
    return workspace_id


async def writable_workspace_id(
    workspace_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> str:
    """As ``writable_workspace``, for handlers that need only the id (no record is loaded).

    Every file write runs this, so it awaits only the cached role (no helper coroutine)."""
    require_scope(principal, write=True)
    _require_role(await services.roles.role_of(principal.user.id, workspace_id), write=True)
    return workspace_id


ReadableWorkspace = Annotated[WorkspaceRecord, Depends(readable_workspace)]
WritableWorkspace = Annotated[WorkspaceRecord, Depends(writable_workspace)]
ReadableWorkspaceId = Annotated[str, Depends(readable_workspace_id)]
WritableWorkspaceId = Annotated[str, Depends(writable_workspace_id)]


def author_of(principal: Principal, request: Request) -> Author:
    request_id = request.scope.get("state", {}).get("request_id")
    return Author(
        user_id=principal.user.id,
        kind="user",
        request_id=request_id if isinstance(request_id, str) else None,
    )
