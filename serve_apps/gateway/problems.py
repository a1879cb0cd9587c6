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

# Domain error -> (status, title). Looked up along the class hierarchy, most specific first.
ACCOUNT_ERRORS: tuple[tuple[type[AccountError], int, str], ...] = (
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
)

WORKSPACE_ERRORS: tuple[tuple[type[WorkspaceError], int, str], ...] = (
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
)

# Sandbox errors: the sandbox itself failed (a failing command is a 200 with its exit code).
SANDBOX_ERRORS: tuple[tuple[type[SandboxError], int, str], ...] = (
    (ProcessNotFound, 404, "Process not found"),
    (SandboxLimitInvalid, 422, "Invalid limit"),
    (SandboxUnavailable, 503, "Sandbox unavailable"),
    (LeaseExpired, 503, "Sandbox lost"),
    (SandboxCrashed, 503, "Sandbox crashed"),
    (SandboxNotFound, 503, "Sandbox lost"),
    (SandboxCreateFailed, 503, "Sandbox unavailable"),
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


async def _account_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AccountError)
    for error_type, status, title in ACCOUNT_ERRORS:
        if isinstance(exc, error_type):
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
            if isinstance(exc, RateLimited):
                headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
            if isinstance(exc, SecretUndecryptable):
                log.error("secret.undecryptable", detail=exc.detail)
            extra = {"code": exc.code} if exc.code is not None else None
            return problem(
                status,
                title,
                exc.detail,
                request_id=_request_id(request),
                headers=headers,
                extra=extra,
            )
    return problem(400, "Account error", exc.detail, request_id=_request_id(request))


async def _workspace_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WorkspaceError)
    status, title = next(
        ((status, title) for kind, status, title in WORKSPACE_ERRORS if isinstance(exc, kind)),
        (400, "Workspace error"),
    )
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, LeaseLost | WorkspaceUnavailable):
        # The workspace's session is moving to another host; the next attempt reaches it.
        log.warning("workspace.lease_lost", detail=exc.detail)
        headers["Retry-After"] = "1"
    elif isinstance(exc, PreconditionFailed) and exc.current_sha256 is not None:
        headers["ETag"] = f'"{exc.current_sha256}"'
        extra["current_sha256"] = exc.current_sha256
    elif isinstance(exc, QuotaExceeded):
        extra["limit_bytes"] = exc.limit_bytes
        if exc.limit_files is not None:
            extra["limit_files"] = exc.limit_files
    return problem(
        status,
        title,
        exc.detail,
        request_id=_request_id(request),
        headers=headers,
        extra=extra,
    )


async def _sandbox_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SandboxError)
    status, title = next(
        ((status, title) for kind, status, title in SANDBOX_ERRORS if isinstance(exc, kind)),
        (500, "Sandbox error"),
    )
    if isinstance(exc, SandboxUnavailable):
        detail = f"sandbox backend unavailable: {exc.reason}"
    elif isinstance(exc, ProcessNotFound):
        detail = f"No process {exc.process_id!r} runs in this workspace."
    else:
        detail = str(exc)
    headers: dict[str, str] = {}
    if status == 503:
        log.warning("sandbox.unavailable", error=type(exc).__name__, detail=detail)
        headers["Retry-After"] = "1"
    return problem(status, title, detail, request_id=_request_id(request), headers=headers)


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
    app.add_exception_handler(AccountError, _account_error)
    app.add_exception_handler(WorkspaceError, _workspace_error)
    app.add_exception_handler(StateError, _state_error)
    app.add_exception_handler(SandboxError, _sandbox_error)
    app.add_exception_handler(Exception, _unexpected)
