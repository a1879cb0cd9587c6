"""Sandbox execution in a workspace: one-shot commands (JSON or SSE) and long-running processes.

Commands run with the workspace's tree at /workspace, no network, under the workspace's limits.
A failing command is a 200 with its ``exit_code``; files it changed become one version whose
number and paths are in the answer. Only members who may write reach these routes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.responses import StreamingResponse

from actors.workspace.api import ExecOutcome, SyncReport
from sandbox import ExecRequest, ExecResult, OutputChunk, ProcessInfo, SandboxError, StartRequest
from serve_apps.gateway.authorization import audit_context
from serve_apps.gateway.deps import CurrentPrincipal, ServicesDep
from serve_apps.gateway.live_auth import LiveAuth, guard_stream
from serve_apps.gateway.routes.access import WORKSPACE_ERRORS, WritableWorkspace, author_of

__all__ = ["router"]

router = APIRouter(prefix="/api/workspaces", tags=["sandbox"])

SANDBOX_ERRORS: dict[int | str, dict[str, str]] = {
    **WORKSPACE_ERRORS,
    503: {"description": "No sandbox could run the command right now (problem+json)."},
}
MAX_COMMAND_CHARS = 64 * 1024
# Shorter secret values would mask ordinary output.
MIN_REDACTED_CHARS = 4
_M = TypeVar("_M", bound=BaseModel)


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str | list[str] = Field(
        description="A shell command line (run by /bin/sh -c), or an argv list."
    )
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str = Field(".", description="Relative to /workspace.")

    @field_validator("command")
    @classmethod
    def _not_empty(cls, command: str | list[str]) -> str | list[str]:
        size = len(command) if isinstance(command, str) else sum(map(len, command))
        if not command or size > MAX_COMMAND_CHARS:
            raise ValueError(f"give a command of 1 to {MAX_COMMAND_CHARS} characters")
        return command

    def command_fields(self) -> dict[str, Any]:
        # Bytecode caches would otherwise become part of every version that ran Python.
        env = {"PYTHONDONTWRITEBYTECODE": "1", **self.env}
        if isinstance(self.command, str):
            return {"shell": self.command, "env": env, "cwd": self.cwd}
        return {"argv": tuple(self.command), "env": env, "cwd": self.cwd}


class ExecIn(CommandIn):
    timeout_s: float | None = Field(None, gt=0, description="Capped by the platform.")
    stdin: str | None = None
    secrets: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="Workspace secrets to put in this command's environment (by name). Their "
        "values are redacted from the output.",
    )

    def request(self, secret_env: dict[str, str] | None = None) -> ExecRequest:
        stdin = (self.stdin or "").encode()
        fields = self.command_fields()
        fields["env"] = {**fields["env"], **(secret_env or {})}
        return _validated(ExecRequest, **fields, stdin=stdin, timeout_s=self.timeout_s)


class StartIn(CommandIn):
    client_token: str | None = Field(
        None, min_length=1, max_length=128, description="Same token, same process (idempotent)."
    )
    pty: bool = False

    def request(self) -> StartRequest:
        return _validated(StartRequest, **self.command_fields(), pty=self.pty)


def _validated(model: type[_M], **fields: Any) -> _M:
    try:
        return model(**fields)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None


class SkippedOut(BaseModel):
    path: str
    reason: str


class SyncOut(BaseModel):
    version: int | None = Field(description="The new version, or null if nothing changed.")
    files_changed: list[str]
    skipped: list[SkippedOut] = Field(description="Not versioned: symlinks, special files...")
    sync_refused: str | None = Field(None, description="Why the changes were not versioned.")

    @classmethod
    def of(cls, report: SyncReport) -> SyncOut:
        return cls(
            version=report.version,
            files_changed=list(report.files_changed),
            skipped=[SkippedOut(path=p, reason=r) for p, r in report.skipped],
            sync_refused=report.refused,
        )


class ExecOut(SyncOut):
    exit_code: int
    stdout: str
    stderr: str
    duration_ms: float
    timed_out: bool
    truncated: bool
    cpu_s: float
    max_rss_bytes: int
    killed_reason: str | None = None

    @classmethod
    def of_outcome(cls, outcome: ExecOutcome, stdout: bytes = b"", stderr: bytes = b"") -> ExecOut:
        result: ExecResult = outcome.result
        return cls(
            **SyncOut.of(outcome.sync).model_dump(),
            exit_code=result.exit_code,
            stdout=(stdout or result.stdout).decode(errors="replace"),
            stderr=(stderr or result.stderr).decode(errors="replace"),
            duration_ms=result.duration_ms,
            timed_out=result.timed_out,
            truncated=result.truncated,
            cpu_s=result.cpu_s,
            max_rss_bytes=result.max_rss_bytes,
            killed_reason=result.killed_reason,
        )


class ProcessOut(BaseModel):
    id: str
    pid: int
    command: list[str]
    pty: bool
    running: bool
    exit_code: int | None
    started_at: str

    @classmethod
    def of(cls, info: ProcessInfo) -> ProcessOut:
        return cls(
            id=info.process_id,
            pid=info.pid,
            command=list(info.argv),
            pty=info.pty,
            running=info.running,
            exit_code=info.exit_code,
            started_at=datetime.fromtimestamp(info.started_at, UTC).isoformat(),
        )


class ProcessList(BaseModel):
    items: list[ProcessOut]


class LogsOut(BaseModel):
    data: str
    offset: int
    next_offset: int
    running: bool
    exit_code: int | None = None


@router.post("/{workspace_id}/exec", responses=SANDBOX_ERRORS)
async def exec_command(
    body: ExecIn,
    record: WritableWorkspace,
    principal: CurrentPrincipal,
    services: ServicesDep,
    request: Request,
) -> ExecOut:
    """Run a command to completion; a non-zero exit code is still a 200."""
    secret_env = await services.security.secrets.resolve(record.id, body.secrets)
    if secret_env:
        await services.security.audit.record(
            "secret.read",
            audit_context(request, principal),
            target_type="secret",
            workspace_id=record.id,
            details={"names": sorted(secret_env), "for": "exec"},
        )
    outcome = await services.writer.exec(
        record.id, body.request(secret_env), author=author_of(principal, request)
    )
    out = ExecOut.of_outcome(outcome)
    if secret_env:
        out.stdout = _redact(out.stdout, secret_env)
        out.stderr = _redact(out.stderr, secret_env)
    return out


def _redact(text: str, secret_env: dict[str, str]) -> str:
    """Mask injected secret values in command output (a secret is never returned)."""
    for value in sorted(secret_env.values(), key=len, reverse=True):
        if len(value) >= MIN_REDACTED_CHARS:
            text = text.replace(value, "[redacted]")
    return text


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


@router.post("/{workspace_id}/exec/stream", responses=SANDBOX_ERRORS)
async def exec_stream(
    body: ExecIn,
    record: WritableWorkspace,
    principal: CurrentPrincipal,
    services: ServicesDep,
    request: Request,
) -> StreamingResponse:
    """Server-sent events: ``output`` ({stream, text}) as it comes, then one ``result``
    (the body of ``POST .../exec``), or ``error`` ({title, detail}) if the sandbox failed or
    the caller's credential was revoked (or membership removed) meanwhile.

    Secrets are not injected here: streamed output cannot be redacted before it leaves."""
    if body.secrets:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "secrets"),
                    "msg": "secrets are injected only by POST .../exec, whose output is redacted",
                    "type": "value_error",
                }
            ]
        )
    events = services.writer.exec_stream(
        record.id, body.request(), author=author_of(principal, request)
    )
    # The first event comes before the response starts, so a refusal is still problem+json.
    first = await anext(events)

    async def body_iter() -> AsyncIterator[bytes]:
        stdout, stderr = bytearray(), bytearray()
        try:
            event: OutputChunk | ExecOutcome = first
            while True:
                if isinstance(event, OutputChunk):
                    (stdout if event.stream == "stdout" else stderr).extend(event.data)
                    text = event.data.decode(errors="replace")
                    yield _sse("output", {"stream": event.stream, "text": text})
                else:
                    result = ExecOut.of_outcome(event, bytes(stdout), bytes(stderr))
                    yield _sse("result", result.model_dump())
                    return
                event = await anext(events)
        except SandboxError as exc:
            yield _sse("error", {"title": type(exc).__name__, "detail": str(exc)})
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    auth = LiveAuth.of_request(services, request, workspace_id=record.id, needs_write=True)
    return StreamingResponse(
        guard_stream(body_iter(), auth),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


@router.post("/{workspace_id}/processes", status_code=201, responses=SANDBOX_ERRORS)
async def start_process(
    body: StartIn,
    record: WritableWorkspace,
    principal: CurrentPrincipal,
    services: ServicesDep,
    request: Request,
) -> ProcessOut:
    """Start a long-running process (a dev server). It keeps the workspace's sandbox until it
    stops or is killed; its file changes are versioned when it is killed and on ``.../sync``."""
    info = await services.writer.start_process(
        record.id,
        body.request(),
        author=author_of(principal, request),
        client_token=body.client_token,
    )
    return ProcessOut.of(info)


@router.get("/{workspace_id}/processes", responses=SANDBOX_ERRORS)
async def list_processes(record: WritableWorkspace, services: ServicesDep) -> ProcessList:
    infos = await services.writer.list_processes(record.id)
    return ProcessList(items=[ProcessOut.of(info) for info in infos])


@router.get("/{workspace_id}/processes/{process_id}/logs", responses=SANDBOX_ERRORS)
async def read_logs(
    process_id: str,
    record: WritableWorkspace,
    services: ServicesDep,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> LogsOut:
    """Output (stdout and stderr merged) from ``offset``; pass ``next_offset`` to continue."""
    logs = await services.writer.read_logs(record.id, process_id, offset)
    return LogsOut(
        data=logs.data.decode(errors="replace"),
        offset=logs.offset,
        next_offset=logs.next_offset,
        running=logs.running,
        exit_code=logs.exit_code,
    )


@router.delete(
    "/{workspace_id}/processes/{process_id}",
    status_code=204,
    response_class=Response,
    responses=SANDBOX_ERRORS,
)
async def kill_process(
    process_id: str,
    record: WritableWorkspace,
    principal: CurrentPrincipal,
    services: ServicesDep,
    request: Request,
) -> Response:
    await services.writer.kill_process(record.id, process_id, author=author_of(principal, request))
    return Response(status_code=204)


@router.post("/{workspace_id}/sync", responses=SANDBOX_ERRORS)
async def sync(
    record: WritableWorkspace,
    principal: CurrentPrincipal,
    services: ServicesDep,
    request: Request,
) -> SyncOut:
    """Version what running processes changed so far."""
    report = await services.writer.sync(record.id, author=author_of(principal, request))
    return SyncOut.of(report)
