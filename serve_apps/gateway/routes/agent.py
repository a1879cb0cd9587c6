"""Agent runs: start (202, or one-shot ``/api/ai/execute``), read, follow (JSON or SSE), cancel.

Members who may write start and cancel runs of their workspace; members read them; anyone else
gets 404, as for the workspace itself. API keys need the ``ai`` scope (and the workspace
scopes: ``workspaces:write`` to start or cancel, ``workspaces:read`` to read).
The event log is read from the database (``after=N`` resumes), so any replica serves any run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response, StreamingResponse

from accounts.errors import PermissionDenied
from accounts.service import Principal
from actors.agent.api import TERMINAL_STATUSES, AgentClient, RunInfo, RunRequest
from actors.agent.errors import AgentError, AgentUnavailable, RunNotFound
from actors.agent.store import RunStore
from actors.workspace.api import WorkspaceNotFound
from actors.workspace.catalog import can_write
from serve_apps.gateway.deps import CurrentPrincipal, ServicesDep
from serve_apps.gateway.live_auth import LiveAuth, guard_stream
from serve_apps.gateway.problems import problem
from serve_apps.gateway.routes.access import WORKSPACE_ERRORS, require_scope
from serve_apps.gateway.routes.openai_compat import require_ai_scope
from serve_apps.gateway.services import Services
from serve_apps.llm_router.errors import LLMNotConfigured

__all__ = ["install_agent_problem_handlers", "router"]

router = APIRouter(tags=["agent"])

MAX_PROMPT_CHARS = 100_000
SSE_HEARTBEAT_S = 15.0
AGENT_ERRORS: dict[int | str, dict[str, str]] = {
    **WORKSPACE_ERRORS,
    503: {"description": "No model is configured, or no agent host answered (problem+json)."},
}


class ExecuteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_id: str = Field(min_length=1, max_length=64)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str | None = Field(None, max_length=200)


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str | None = Field(None, max_length=200)
    max_steps: int | None = Field(None, ge=1, description="Capped by the platform's limit.")
    max_cost_usd: float | None = Field(None, ge=0, description="Capped by the default budget.")


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    model_calls: int


class ExecutionOut(BaseModel):
    command: str
    exit_code: int
    stdout: str
    stderr: str


class ExecuteOut(BaseModel):
    run_id: str
    status: str
    message: str | None
    files_changed: list[str]
    executions: list[ExecutionOut]
    usage: UsageOut


class RunStartedOut(BaseModel):
    run_id: str
    status: str


class RunOut(BaseModel):
    run_id: str
    workspace_id: str
    status: str
    steps: int
    usage: UsageOut
    model: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    message: str | None = None
    stop_reason: str | None = None
    files_changed: list[str]
    host: str | None = None

    @classmethod
    def of(cls, run: RunInfo) -> RunOut:
        return cls(
            run_id=run.run_id,
            workspace_id=run.workspace_id,
            status=run.status,
            steps=run.steps,
            usage=UsageOut(**run.usage.as_dict()),
            model=run.model,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            message=run.message,
            stop_reason=run.stop_reason,
            files_changed=list(run.files_changed),
            host=run.host,
        )


# --- access -----------------------------------------------------------------------------------


def _agents(services: Services) -> AgentClient:
    if services.agents is None:
        raise LLMNotConfigured()
    return services.agents


def _runs(services: Services) -> RunStore:
    return RunStore(services.db)


async def _check_workspace(
    services: Services, principal: Principal, workspace_id: str, *, write: bool
) -> None:
    require_ai_scope(principal)
    require_scope(principal, write=write)
    record = await services.catalog.get_for(principal.user.id, workspace_id)
    if write and not can_write(record.role):
        raise PermissionDenied("Your role in this workspace is read-only.")


async def _run_for(
    services: Services, principal: Principal, run_id: str, *, write: bool = False
) -> RunInfo:
    """The run, if the caller may see it (``write``: may change its workspace); 404 otherwise."""
    run = await _runs(services).get(run_id)
    try:
        await _check_workspace(services, principal, run.workspace_id, write=write)
    except WorkspaceNotFound:
        raise RunNotFound(f"no agent run {run_id!r}") from None
    return run


def _request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


async def _start(
    services: Services,
    principal: Principal,
    request: Request,
    *,
    workspace_id: str,
    prompt: str,
    model: str | None,
    max_steps: int | None = None,
    max_cost_usd: float | None = None,
) -> RunInfo:
    await _check_workspace(services, principal, workspace_id, write=True)
    return await _agents(services).start(
        RunRequest(
            workspace_id=workspace_id,
            user_id=principal.user.id,
            prompt=prompt,
            model=model,
            max_steps=max_steps,
            max_cost_usd=max_cost_usd,
            request_id=_request_id(request),
        )
    )


# --- routes -----------------------------------------------------------------------------------


@router.post("/api/ai/execute", response_model=ExecuteOut, responses=AGENT_ERRORS)
async def execute(
    body: ExecuteIn, principal: CurrentPrincipal, services: ServicesDep, request: Request
) -> ExecuteOut:
    """Run the agent on the workspace until it ends (bounded by the platform's execute
    timeout: a run still going then is answered with its current status) and return the
    final message, the files it changed, the commands it ran and the usage."""
    run = await _start(
        services,
        principal,
        request,
        workspace_id=body.workspace_id,
        prompt=body.prompt,
        model=body.model,
    )
    settings = services.agent_settings
    deadline = time.monotonic() + settings.execute_timeout_s
    store = _runs(services)
    while run.status not in TERMINAL_STATUSES and time.monotonic() < deadline:
        await asyncio.sleep(settings.poll_interval_s)
        run = await store.get(run.run_id)
    return ExecuteOut(
        run_id=run.run_id,
        status=run.status,
        message=run.message,
        files_changed=list(run.files_changed),
        executions=[ExecutionOut(**e) for e in run.executions],
        usage=UsageOut(**run.usage.as_dict()),
    )


@router.post(
    "/api/workspaces/{workspace_id}/agent/runs",
    status_code=202,
    response_model=RunStartedOut,
    responses=AGENT_ERRORS,
)
async def start_run(
    workspace_id: str,
    body: RunIn,
    principal: CurrentPrincipal,
    services: ServicesDep,
    request: Request,
) -> RunStartedOut:
    """Start a run; it waits (``queued``) while an earlier run of the workspace is active."""
    run = await _start(
        services,
        principal,
        request,
        workspace_id=workspace_id,
        prompt=body.prompt,
        model=body.model,
        max_steps=body.max_steps,
        max_cost_usd=body.max_cost_usd,
    )
    return RunStartedOut(run_id=run.run_id, status=run.status)


@router.get("/api/workspaces/{workspace_id}/agent/runs", responses=AGENT_ERRORS)
async def list_runs(
    workspace_id: str, principal: CurrentPrincipal, services: ServicesDep
) -> dict[str, list[RunOut]]:
    """The workspace's runs, newest first."""
    await _check_workspace(services, principal, workspace_id, write=False)
    runs = await _runs(services).list_for_workspace(workspace_id)
    return {"items": [RunOut.of(run) for run in runs]}


@router.get("/api/agent/runs/{run_id}", response_model=RunOut, responses=AGENT_ERRORS)
async def get_run(run_id: str, principal: CurrentPrincipal, services: ServicesDep) -> RunOut:
    return RunOut.of(await _run_for(services, principal, run_id))


@router.post("/api/agent/runs/{run_id}/cancel", response_model=RunOut, responses=AGENT_ERRORS)
async def cancel_run(run_id: str, principal: CurrentPrincipal, services: ServicesDep) -> RunOut:
    """Ask the run to stop (status ``cancelling``, then ``cancelled`` at its next step
    boundary; a command it runs is stopped). An ended run is returned unchanged."""
    await _run_for(services, principal, run_id, write=True)
    return RunOut.of(await _agents(services).cancel(run_id))


@router.get("/api/agent/runs/{run_id}/events", responses=AGENT_ERRORS)
async def run_events(
    run_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    request: Request,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    accept: Annotated[str | None, Header()] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """Events with ``seq > after`` as ``{items, next_after}``; with ``Accept:
    text/event-stream`` the same log as a live SSE stream (see ``/events/stream``)."""
    run = await _run_for(services, principal, run_id)
    if accept is not None and "text/event-stream" in accept:
        auth = LiveAuth.of_request(services, request, workspace_id=run.workspace_id)
        return _sse(services, run_id, _resume_point(after, last_event_id), auth)
    events = await _runs(services).events(run_id, after=after, limit=limit)
    return JSONResponse(
        {
            "items": [event.as_dict() for event in events],
            "next_after": events[-1].seq if events else after,
        }
    )


@router.get("/api/agent/runs/{run_id}/events/stream", responses=AGENT_ERRORS)
async def stream_events(
    run_id: str,
    principal: CurrentPrincipal,
    services: ServicesDep,
    request: Request,
    after: Annotated[int, Query(ge=0)] = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    """Server-sent events: each log event as ``id: <seq>``, ``event: <kind>``, ``data: <json>``,
    as it is appended; a last ``end`` event once the run ended. Reconnect with
    ``Last-Event-ID`` (or ``after``) to continue where the stream stopped. The stream ends with
    an ``error`` event once the caller's credential is revoked or their membership removed."""
    run = await _run_for(services, principal, run_id)
    auth = LiveAuth.of_request(services, request, workspace_id=run.workspace_id)
    return _sse(services, run_id, _resume_point(after, last_event_id), auth)


def _resume_point(after: int, last_event_id: str | None) -> int:
    if last_event_id is not None and last_event_id.strip().isdigit():
        return max(after, int(last_event_id.strip()))
    return after


def _sse(services: Services, run_id: str, after: int, auth: LiveAuth) -> StreamingResponse:
    events = _follow(_runs(services), run_id, after, services.agent_settings.poll_interval_s)
    return StreamingResponse(
        guard_stream(events, auth),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _follow(store: RunStore, run_id: str, after: int, poll_s: float) -> AsyncIterator[bytes]:
    quiet_since = time.monotonic()
    while True:
        events = await store.events(run_id, after=after)
        for event in events:
            data = json.dumps(event.as_dict(), separators=(",", ":"))
            yield f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n".encode()
            after = event.seq
        if events:
            quiet_since = time.monotonic()
            continue
        # The final status event is appended before the run's row says it ended, so once the
        # row has ended, one more read has seen everything.
        status = await store.status(run_id)
        if status in TERMINAL_STATUSES:
            if not await store.events(run_id, after=after, limit=1):
                yield f"event: end\ndata: {json.dumps({'status': status})}\n\n".encode()
                return
            continue
        if time.monotonic() - quiet_since > SSE_HEARTBEAT_S:
            yield b": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(poll_s)


# --- errors -----------------------------------------------------------------------------------


async def _agent_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AgentError)
    status, title = (
        (404, "Run not found") if isinstance(exc, RunNotFound) else (503, "Agent unavailable")
    )
    headers = {"Retry-After": "1"} if isinstance(exc, AgentUnavailable) else {}
    return problem(status, title, exc.detail, request_id=_request_id(request), headers=headers)


def install_agent_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AgentError, _agent_error)
