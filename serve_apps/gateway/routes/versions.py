"""Versions (checkpoints) of a workspace: list, show, diff, restore (itself a new version)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from actors.workspace.api import Change, VersionInfo
from actors.workspace.diff import FileDiff
from serve_apps.gateway.deps import CurrentPrincipal, ServicesDep
from serve_apps.gateway.routes.access import (
    WORKSPACE_ERRORS,
    ReadableWorkspaceId,
    WritableWorkspaceId,
    author_of,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/workspaces", tags=["versions"])

MAX_PAGE = 200


class AuthorOut(BaseModel):
    user_id: str | None
    kind: str


class ChangeOut(BaseModel):
    path: str
    change: str
    before_sha256: str | None
    after_sha256: str | None
    size: int | None = None
    diff: str | None = None
    binary: bool = False
    truncated: bool = False

    @classmethod
    def of(cls, change: Change) -> ChangeOut:
        return cls(
            path=change.path,
            change=change.kind,
            before_sha256=change.before_sha256,
            after_sha256=change.after_sha256,
            size=change.size,
        )

    @classmethod
    def of_diff(cls, file_diff: FileDiff) -> ChangeOut:
        return cls.of(file_diff.change).model_copy(
            update={
                "diff": file_diff.diff,
                "binary": file_diff.binary,
                "truncated": file_diff.truncated,
            }
        )


class VersionOut(BaseModel):
    version: int
    created_at: datetime
    author: AuthorOut
    message: str
    restored_from: int | None = None

    @classmethod
    def of(cls, info: VersionInfo) -> VersionOut:
        return cls(
            version=info.number,
            created_at=info.created_at,
            author=AuthorOut(user_id=info.author_id, kind=info.author_kind),
            message=info.message,
            restored_from=info.restored_from,
        )


class VersionDetail(VersionOut):
    changes: list[ChangeOut]

    @classmethod
    def detail(cls, info: VersionInfo) -> VersionDetail:
        return cls(
            **VersionOut.of(info).model_dump(),
            changes=[ChangeOut.of(change) for change in info.changes],
        )


class VersionList(BaseModel):
    items: list[VersionOut]
    next_before: int | None = None


class DiffOut(BaseModel):
    version: int
    against: int
    items: list[ChangeOut]


class RestoreOut(BaseModel):
    version: int
    restored_from: int


@router.get("/{workspace_id}/versions", response_model=VersionList, responses=WORKSPACE_ERRORS)
async def list_versions(
    workspace_id: ReadableWorkspaceId,
    services: ServicesDep,
    limit: int = Query(default=50, ge=1, le=MAX_PAGE),
    before: int | None = Query(default=None, ge=1, description="Only versions older than this."),
) -> VersionList:
    """Versions newest first; pass ``next_before`` back as ``before`` for the next page."""
    versions = await services.reader.list_versions(workspace_id, limit=limit, before=before)
    next_before = versions[-1].number if len(versions) == limit and versions else None
    return VersionList(items=[VersionOut.of(info) for info in versions], next_before=next_before)


@router.get(
    "/{workspace_id}/versions/{version}",
    response_model=VersionDetail,
    responses=WORKSPACE_ERRORS,
)
async def get_version(
    version: int, workspace_id: ReadableWorkspaceId, services: ServicesDep
) -> VersionDetail:
    """One version with the changes it made against its parent."""
    info = await services.reader.get_version(workspace_id, version)
    return VersionDetail.detail(info)


@router.get(
    "/{workspace_id}/versions/{version}/diff",
    response_model=DiffOut,
    responses=WORKSPACE_ERRORS,
)
async def diff_versions(
    version: int,
    workspace_id: ReadableWorkspaceId,
    services: ServicesDep,
    against: int | None = Query(default=None, ge=0, description="Default: the previous version."),
) -> DiffOut:
    """What changed from ``against`` to ``version``, with a unified diff for text files."""
    base = against if against is not None else max(version - 1, 0)
    changes = await services.reader.diff(workspace_id, base, version)
    return DiffOut(
        version=version,
        against=base,
        items=[ChangeOut.of_diff(file_diff) for file_diff in changes],
    )


@router.post(
    "/{workspace_id}/versions/{version}/restore",
    response_model=RestoreOut,
    responses=WORKSPACE_ERRORS,
)
async def restore_version(
    version: int,
    request: Request,
    workspace_id: WritableWorkspaceId,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> RestoreOut:
    """Make ``version``'s files current as a new version (so a restore can be undone too)."""
    info = await services.writer.restore(
        workspace_id, version, author=author_of(principal, request)
    )
    return RestoreOut(version=info.number, restored_from=version)
