"""RFC 9457 problem details: the single place where errors become HTTP responses."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from accounts.errors import (
    AccountError,
    EmailTaken,
    EmailTokenInvalid,
    InvalidCredentials,
    InvalidEmail,
    InvalidSecretName,
    InvitationInvalid,
    OAuthFailed,
    OAuthUnavailable,
    OrgMemberNotFound,
    OrgNotFound,
    PermissionDenied,
    RateLimited,
    RefreshTokenInvalid,
    SecretNotFound,
    SecretUndecryptable,
    SessionNotFound,
    TokenInvalid,
    TwoFactorStateError,
    WeakPassword,
)
from actors.sandbox_pool.lease import LeaseExpired
from actors.workspace.api import (
    FileNotFoundInWorkspace,
    InvalidArchive,
    InvalidPath,
    LeaseLost,
    PreconditionFailed,
    QuotaExceeded,
    VersionNotFound,
    WorkspaceError,
    WorkspaceNotFound,
    WorkspaceUnavailable,
)
from actors.workspace.catalog import InvalidWorkspaceName, MemberNotFound
from actors.workspace.templates import UnknownTemplate
from sandbox import (
    ProcessNotFound,
    SandboxCrashed,
    SandboxCreateFailed,
    SandboxError,
    SandboxLimitInvalid,
    SandboxNotFound,
    SandboxUnavailable,
)
from state.errors import BlobNotFound, StateError, StorageUnavailable

__all__ = ["ProblemResponse", "install_problem_handlers", "problem"]

log = structlog.get_logger("gateway.errors")

PROBLEM_JSON = "application/problem+json"

# Domain error -> (status, title): the one table every domain error is mapped through. Looked
# up in order, so a subclass must come before its base. A failing user command is not an
# error (a 200 with its exit code); sandbox errors here mean the sandbox itself failed.
DOMAIN_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    # accounts
    (InvalidCredentials, 401, "Invalid credentials"),
    (TokenInvalid, 401, "Unauthorized"),
    (RefreshTokenInvalid, 401, "Invalid refresh token"),
    (EmailTaken, 409, "Email already registered"),
    (InvalidEmail, 422, "Invalid email"),
    (WeakPassword, 422, "Weak password"),
    (PermissionDenied, 403, "Forbidden"),
    (RateLimited, 429, "Too many requests"),
    (EmailTokenInvalid, 400, "Invalid or expired link"),
    (TwoFactorStateError, 409, "Two-factor state conflict"),
    (OAuthUnavailable, 404, "OAuth provider unavailable"),
    (OAuthFailed, 400, "OAuth sign-in failed"),
    (SessionNotFound, 404, "Session not found"),
    (SecretNotFound, 404, "Secret not found"),
    (InvalidSecretName, 422, "Invalid secret"),
    (SecretUndecryptable, 500, "Secret unreadable"),
    (OrgMemberNotFound, 404, "Member not found"),
    (OrgNotFound, 404, "Organisation not found"),
    (InvitationInvalid, 400, "Invalid invitation"),
    (AccountError, 400, "Account error"),
    # workspaces
    (WorkspaceNotFound, 404, "Workspace not found"),
    (FileNotFoundInWorkspace, 404, "File not found"),
    (VersionNotFound, 404, "Version not found"),
    (MemberNotFound, 404, "Member not found"),
    (InvalidPath, 400, "Invalid path"),
    (InvalidArchive, 400, "Invalid archive"),
    (PreconditionFailed, 412, "Precondition failed"),
    (QuotaExceeded, 413, "Quota exceeded"),
    (UnknownTemplate, 422, "Unknown template"),
    (InvalidWorkspaceName, 422, "Invalid workspace name"),
    (LeaseLost, 503, "Workspace moving"),
    (WorkspaceUnavailable, 503, "Workspace unavailable"),
    (WorkspaceError, 400, "Workspace error"),
    # sandboxes
    (ProcessNotFound, 404, "Process not found"),
    (SandboxLimitInvalid, 422, "Invalid limit"),
    (SandboxUnavailable, 503, "Sandbox unavailable"),
    (LeaseExpired, 503, "Sandbox lost"),
    (SandboxCrashed, 503, "Sandbox crashed"),
    (SandboxNotFound, 503, "Sandbox lost"),
    (SandboxCreateFailed, 503, "Sandbox unavailable"),
    (SandboxError, 500, "Sandbox error"),
)


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    request_id: str | None,
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }
    if extra:
        body.update(extra)
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def _request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    titles = {
        401: "Unauthorized",
        404: "Not found",
        405: "Method not allowed",
        413: "Request body too large",
    }
    detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route matches {request.url.path}."
    title = titles.get(exc.status_code, detail if len(detail) < 60 else "Request failed")
    return problem(
        exc.status_code, title, detail, request_id=_request_id(request), headers=exc.headers
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": err.get("type")}
        for err in exc.errors()
    ]
    content_type = request.headers.get("content-type", "")
    body_errors = [err for err in errors if err["loc"] == ["body"]]
    if body_errors and "json" not in content_type:
        return problem(
            415,
            "Unsupported media type",
            "Send the body as JSON with 'Content-Type: application/json'.",
            request_id=_request_id(request),
        )
    if any(err["type"] == "json_invalid" for err in errors):
        return problem(
            400,
            "Malformed JSON",
            "The request body is not valid JSON.",
            request_id=_request_id(request),
        )
    return problem(
        422,
        "Invalid request",
        "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)[:1000],
        request_id=_request_id(request),
        extra={"errors": errors},
    )


def _detail(exc: Exception) -> str:
    if isinstance(exc, SandboxUnavailable):
        return f"sandbox backend unavailable: {exc.reason}"
    if isinstance(exc, ProcessNotFound):
        return f"No process {exc.process_id!r} runs in this workspace."
    detail = getattr(exc, "detail", None)
    return detail if isinstance(detail, str) else str(exc)


def _decorations(exc: Exception, status: int) -> tuple[dict[str, str], dict[str, Any]]:
    """The headers and extra body fields some errors carry besides status and title."""
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 503:
        # A session moving to another host, a sandbox lost: the next attempt succeeds.
        headers["Retry-After"] = "1"
    if isinstance(exc, AccountError) and exc.code is not None:
        extra["code"] = exc.code
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    elif isinstance(exc, PreconditionFailed) and exc.current_sha256 is not None:
        headers["ETag"] = f'"{exc.current_sha256}"'
        extra["current_sha256"] = exc.current_sha256
    elif isinstance(exc, QuotaExceeded):
        extra["limit_bytes"] = exc.limit_bytes
        if exc.limit_files is not None:
            extra["limit_files"] = exc.limit_files
    return headers, extra


async def _domain_error(request: Request, exc: Exception) -> Response:
    status, title = next(
        (status, title) for kind, status, title in DOMAIN_ERRORS if isinstance(exc, kind)
    )
    detail = _detail(exc)
    if status == 503:
        log.warning("domain.unavailable", error=type(exc).__name__, detail=detail)
    elif status >= 500:
        log.error("domain.error", error=type(exc).__name__, detail=detail)
    headers, extra = _decorations(exc, status)
    return problem(
        status, title, detail, request_id=_request_id(request), headers=headers, extra=extra
    )


async def _state_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, BlobNotFound):
        # The database names content the blob store does not hold: durable data is missing.
        # That is our failure, not a missing resource of the caller's, so it stays a 500.
        log.error("blob.missing", digest=exc.digest)
        return problem(
            500,
            "Internal error",
            "Stored content is missing; this was logged with the request id.",
            request_id=_request_id(request),
        )
    if isinstance(exc, StorageUnavailable):
        log.warning("storage.unavailable", part=exc.part, reason=exc.reason)
        return problem(
            503,
            "Service unavailable",
            f"The {exc.part} is unavailable; retry shortly.",
            request_id=_request_id(request),
            headers={"Retry-After": "2"},
        )
    log.error("state.error", error=type(exc).__name__, message=str(exc))
    return problem(
        500, "Internal error", "A storage error occurred.", request_id=_request_id(request)
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("http.unhandled", error=type(exc).__name__)
    return problem(
        500,
        "Internal error",
        "An unexpected error occurred; it was logged with this request id.",
        request_id=_request_id(request),
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for base in (AccountError, WorkspaceError, SandboxError):
        app.add_exception_handler(base, _domain_error)
    app.add_exception_handler(StateError, _state_error)
    app.add_exception_handler(Exception, _unexpected)
