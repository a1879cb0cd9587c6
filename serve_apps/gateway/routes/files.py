"""Files of a workspace: list, read (ETag), write (If-Match), delete, move, zip in and out.

Reads go straight to durable state (``WorkspaceReader``); every change goes through the
workspace's single writer (``WorkspaceWriter``) and is acknowledged only once durable. Paths are
validated here too, so a hostile path is refused before any I/O.
"""

from __future__ import annotations

import functools
import mimetypes
import re

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.convertors import PathConvertor, register_url_convertor

from actors.workspace.api import FileInfo, QuotaExceeded
from actors.workspace.archive import unpack_zip
from actors.workspace.paths import validate_path
from serve_apps.gateway.deps import CurrentPrincipal, ServicesDep
from serve_apps.gateway.middleware import UploadRoute
from serve_apps.gateway.routes.access import (
    WORKSPACE_ERRORS,
    ReadableWorkspace,
    ReadableWorkspaceId,
    WritableWorkspaceId,
    author_of,
)
from state.threads import run_sync

__all__ = ["UPLOAD_ROUTES", "router"]


class AnyPathConvertor(PathConvertor):
    """Starlette's ``path`` without the newline blind spot (its ``.*`` stops at ``\\n``).

    A path with a control character must reach ``validate_path`` and be refused as 400, not
    fall through the router as an unexplained 404.
    """

    regex = "(?s:.*)"


register_url_convertor("anypath", AnyPathConvertor())

router = APIRouter(prefix="/api/workspaces", tags=["files"])

# Bodies that are uploads, not JSON: the edge lets them through up to ``max_upload_bytes``.
UPLOAD_ROUTES: tuple[UploadRoute, ...] = (
    ("PUT", re.compile(r"/api/workspaces/[^/]+/files/.*", re.DOTALL)),
    ("POST", re.compile(r"/api/workspaces/[^/]+/archive")),
)
ZIP_MEDIA_TYPE = "application/zip"
FILE_ERRORS: dict[int | str, dict[str, str]] = {
    **WORKSPACE_ERRORS,
    400: {"description": "Invalid path or archive (problem+json)."},
    412: {"description": "If-Match does not match the current content (problem+json)."},
    413: {"description": "Over the per-file or per-workspace quota (problem+json)."},
}


class FileOut(BaseModel):
    path: str
    size: int
    sha256: str
    modified_at: str
    executable: bool

    @classmethod
    def of(cls, info: FileInfo) -> FileOut:
        return cls(
            path=info.path,
            size=info.size,
            sha256=info.sha256,
            modified_at=info.modified_at.isoformat(),
            executable=bool(info.mode & 0o111),
        )


class FileList(BaseModel):
    items: list[FileOut]
    version: int
    total_bytes: int


class WriteOut(BaseModel):
    path: str
    size: int
    sha256: str
    version: int
    changed: bool = Field(description="False when the bytes were already stored (no new version).")


class MoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(alias="from", min_length=1, max_length=4096)
    destination: str = Field(alias="to", min_length=1, max_length=4096)


class VersionRef(BaseModel):
    version: int


class UploadOut(BaseModel):
    version: int
    files: int


def quote_etag(sha256: str) -> str:
    return f'"{sha256}"'


def etag_values(header: str) -> set[str]:
    """The entity tags of an ``If-Match``/``If-None-Match`` header, unquoted (weak or strong)."""
    values: set[str] = set()
    for raw in header.split(","):
        tag = raw.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if len(tag) >= 2 and tag[0] == tag[-1] == '"':
            tag = tag[1:-1]
        if tag:
            values.add(tag)
    return values


def if_match_of(request: Request) -> str | None:
    """The one sha256 (or ``*``) of ``If-Match``: quoted or bare; ``None`` when absent."""
    header = request.headers.get("if-match")
    if header is None:
        return None
    values = etag_values(header)
    return next(iter(values)) if len(values) == 1 else header.strip()


async def read_body_capped(request: Request, limit_bytes: int, *, what: str) -> bytes:
    """The request body, refused with ``QuotaExceeded`` (413) as soon as it passes the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit_bytes:
        raise QuotaExceeded(f"The {what} exceeds the limit of {limit_bytes} bytes.", limit_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit_bytes:
            raise QuotaExceeded(
                f"The {what} exceeds the limit of {limit_bytes} bytes.", limit_bytes
            )
    return bytes(body)


def media_type_of(path: str) -> str:
    guessed, _encoding = mimetypes.guess_type(path, strict=False)
    return guessed or "application/octet-stream"


@router.get("/{workspace_id}/files", response_model=FileList, responses=WORKSPACE_ERRORS)
async def list_files(workspace: ReadableWorkspace, services: ServicesDep) -> FileList:
    """Every file of the current version, recursively, sorted by path."""
    files = await services.reader.list_files(workspace.id)
    return FileList(
        items=[FileOut.of(info) for info in files],
        version=workspace.head_version,
        total_bytes=sum(info.size for info in files),
    )


@router.get(
    "/{workspace_id}/files/{path:anypath}",
    response_class=Response,
    responses={**FILE_ERRORS, 200: {"content": {"application/octet-stream": {}}}},
)
async def read_file(
    path: str, request: Request, workspace_id: ReadableWorkspaceId, services: ServicesDep
) -> Response:
    """The raw bytes, with ``ETag: "<sha256>"``; ``If-None-Match`` answers 304."""
    validate_path(path)
    info, data = await services.reader.read_file(workspace_id, path)
    etag = quote_etag(info.sha256)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = etag_values(if_none_match)
        if "*" in tags or info.sha256 in tags:
            return Response(status_code=304, headers={"ETag": etag})
    return Response(
        content=data,
        media_type=media_type_of(path),
        headers={"ETag": etag, "Cache-Control": "private, no-cache"},
    )


@router.put(
    "/{workspace_id}/files/{path:anypath}",
    response_model=WriteOut,
    responses=FILE_ERRORS,
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}, "required": True}},
)
async def write_file(
    path: str,
    request: Request,
    response: Response,
    workspace_id: WritableWorkspaceId,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> WriteOut:
    """Create or replace a file with the raw body; ``If-Match`` makes it conditional."""
    validate_path(path)
    limit = services.workspace_settings.max_file_bytes
    data = await read_body_capped(request, limit, what="file")
    result = await services.writer.write_file(
        workspace_id,
        path,
        data,
        if_match=if_match_of(request),
        author=author_of(principal, request),
    )
    response.headers["ETag"] = quote_etag(result.sha256)
    return WriteOut(
        path=result.path,
        size=result.size,
        sha256=result.sha256,
        version=result.version,
        changed=result.changed,
    )


@router.delete("/{workspace_id}/files/{path:anypath}", status_code=204, responses=FILE_ERRORS)
async def delete_file(
    path: str,
    request: Request,
    workspace_id: WritableWorkspaceId,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> Response:
    validate_path(path)
    await services.writer.delete_file(
        workspace_id, path, if_match=if_match_of(request), author=author_of(principal, request)
    )
    return Response(status_code=204)


@router.post("/{workspace_id}/move", response_model=VersionRef, responses=FILE_ERRORS)
async def move_file(
    body: MoveRequest,
    request: Request,
    workspace_id: WritableWorkspaceId,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> VersionRef:
    """Rename ``from`` to ``to`` (which must not exist) as one version."""
    validate_path(body.source)
    validate_path(body.destination)
    version = await services.writer.move_file(
        workspace_id, body.source, body.destination, author=author_of(principal, request)
    )
    return VersionRef(version=version.number)


@router.get(
    "/{workspace_id}/archive",
    response_class=Response,
    responses={**WORKSPACE_ERRORS, 200: {"content": {ZIP_MEDIA_TYPE: {}}}},
)
async def download_archive(
    workspace_id: ReadableWorkspaceId,
    services: ServicesDep,
    version: int | None = Query(default=None, ge=0),
) -> Response:
    """The workspace (its current version, or ``?version=``) as a zip file."""
    data = await services.reader.archive(workspace_id, version=version)
    filename = f"{workspace_id}-v{version if version is not None else 'head'}.zip"
    return Response(
        content=data,
        media_type=ZIP_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post(
    "/{workspace_id}/archive",
    response_model=UploadOut,
    responses=FILE_ERRORS,
    openapi_extra={"requestBody": {"content": {ZIP_MEDIA_TYPE: {}}, "required": True}},
)
async def upload_archive(
    request: Request,
    workspace_id: WritableWorkspaceId,
    principal: CurrentPrincipal,
    services: ServicesDep,
) -> UploadOut:
    """Unpack a zip into the workspace as one version; any bad member refuses the whole upload."""
    settings = services.workspace_settings
    data = await read_body_capped(request, settings.max_upload_bytes, what="archive")
    # Inflating is CPU work on up to the workspace quota: keep it off the event loop.
    unpacked = await run_sync(
        functools.partial(
            unpack_zip,
            data,
            max_files=settings.max_files,
            max_total_bytes=settings.max_workspace_bytes,
            max_file_bytes=settings.max_file_bytes,
        )
    )
    files = unpacked.files
    version = await services.writer.apply_batch(
        workspace_id,
        dict[str, bytes | None](files),
        author=author_of(principal, request),
        message=f"Uploaded an archive of {len(files)} files",
        modes=unpacked.modes,
    )
    return UploadOut(version=version.number, files=len(files))
