"""OpenAI-compatible AI routes: ``POST /v1/chat/completions`` (plain and SSE) and ``/v1/models``.

An unmodified OpenAI SDK pointed at ``<platform>/v1`` with an API key (scope ``ai``) uses the
platform's routing. Errors stay problem+json like every other route, with two extension members
for OpenAI SDKs: ``message`` (shown in the exception text) and ``code`` (e.g.
``context_length_exceeded``, the exception's ``.code``). The SDK raises ``APIStatusError``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from accounts.errors import PermissionDenied
from accounts.service import Principal
from serve_apps.gateway.deps import CurrentPrincipal, ServicesDep
from serve_apps.gateway.problems import problem
from serve_apps.gateway.services import Services
from serve_apps.llm_router.errors import (
    BudgetExceeded,
    ContextWindowExceeded,
    InvalidModelRequest,
    InvalidProviderKey,
    LLMConfigError,
    LLMError,
    LLMNotConfigured,
    ModelNotFound,
    ProviderError,
    ProviderKeysUnavailable,
    ProviderTimeout,
    RateLimited,
)
from serve_apps.llm_router.ports import LLMClient
from serve_apps.llm_router.types import CallContext, ChatChunk, ChatRequest

__all__ = ["AI_SCOPE", "install_llm_problem_handlers", "require_ai_scope", "router"]

log = structlog.get_logger("gateway.ai")

router = APIRouter(tags=["ai"])

AI_SCOPE = "ai"

# Domain error -> (status, title, OpenAI-style code), most specific first.
LLM_ERRORS: tuple[tuple[type[LLMError], int, str, str], ...] = (
    (LLMNotConfigured, 503, "No model configured", "model_not_configured"),
    (LLMConfigError, 503, "Model configuration invalid", "model_config_invalid"),
    (ProviderKeysUnavailable, 503, "Provider keys disabled", "provider_keys_disabled"),
    (ModelNotFound, 404, "Model not found", "model_not_found"),
    (ContextWindowExceeded, 400, "Context window exceeded", "context_length_exceeded"),
    (InvalidModelRequest, 400, "Invalid model request", "invalid_request"),
    (InvalidProviderKey, 422, "Invalid provider key", "invalid_provider_key"),
    (RateLimited, 429, "Rate limited by the provider", "rate_limit_exceeded"),
    (BudgetExceeded, 402, "Budget exceeded", "budget_exceeded"),
    (ProviderTimeout, 504, "Provider timeout", "provider_timeout"),
    (ProviderError, 502, "Provider error", "provider_error"),
)

AI_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "Missing, invalid or expired credentials (problem+json)."},
    403: {"description": "The API key lacks the 'ai' scope (problem+json)."},
    503: {"description": "No model configured (problem+json)."},
}


def _classify(exc: LLMError) -> tuple[int, str, str]:
    return next(
        (
            (status, title, code)
            for kind, status, title, code in LLM_ERRORS
            if isinstance(exc, kind)
        ),
        (500, "AI routing error", "internal_error"),
    )


async def _llm_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LLMError)
    status, title, code = _classify(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, round(exc.retry_after_s or 1)))
    request_id = request.scope.get("state", {}).get("request_id")
    return problem(
        status,
        title,
        exc.detail,
        request_id=request_id if isinstance(request_id, str) else None,
        headers=headers,
        # OpenAI SDKs put ``message`` into the exception text and ``code`` into ``.code``.
        extra={"code": code, "message": exc.detail},
    )


def install_llm_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LLMError, _llm_error)


def require_ai_scope(principal: Principal) -> None:
    if not principal.has_scope(AI_SCOPE):
        raise PermissionDenied(f"This API key lacks the {AI_SCOPE!r} scope.")


def llm_of(services: Services) -> LLMClient:
    if services.llm is None:
        raise LLMNotConfigured()
    return services.llm


class ChatCompletionBody(BaseModel):
    """OpenAI's request body; parameters not named here pass through to the provider."""

    model_config = ConfigDict(extra="allow")

    model: str | None = Field(default=None, max_length=200)
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    # OpenAI's end-user id: the platform knows its caller, so it is not forwarded.
    user: str | None = None


def _chat_request(body: ChatCompletionBody, principal: Principal, request: Request) -> ChatRequest:
    request_id = request.scope.get("state", {}).get("request_id")
    return ChatRequest(
        model=body.model,
        messages=body.messages,
        tools=body.tools,
        tool_choice=body.tool_choice,
        temperature=body.temperature,
        max_tokens=body.max_tokens,
        stop=body.stop,
        params=dict(body.model_extra or {}),
        context=CallContext(
            user_id=principal.user.id,
            request_id=request_id if isinstance(request_id, str) else None,
        ),
    )


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


async def _event_stream(
    first: ChatChunk, rest: AsyncIterator[ChatChunk], *, include_usage: bool
) -> AsyncIterator[bytes]:
    chunk: ChatChunk | None = first
    try:
        while chunk is not None:
            if chunk.usage is not None and not include_usage:
                chunk = chunk.model_copy(update={"usage": None})
            if (
                chunk.usage is not None
                or chunk.role
                or chunk.content is not None
                or (chunk.tool_calls or chunk.finish_reason)
            ):
                yield _sse(chunk.to_openai())
            chunk = await anext(rest, None)
    except LLMError as exc:
        # Headers are sent: the error travels in the stream, as OpenAI sends it.
        _, _, code = _classify(exc)
        yield _sse({"error": {"message": exc.detail, "type": type(exc).__name__, "code": code}})
        return
    yield b"data: [DONE]\n\n"


@router.post("/v1/chat/completions", responses=AI_ERRORS)
async def chat_completions(
    body: ChatCompletionBody, principal: CurrentPrincipal, services: ServicesDep, request: Request
) -> Response:
    """A chat completion through the platform's routing (``stream: true`` answers SSE)."""
    require_ai_scope(principal)
    llm = llm_of(services)
    chat = _chat_request(body, principal, request)
    if not body.stream:
        response = await llm.complete(chat)
        return JSONResponse(response.to_openai())
    chunks = llm.stream(chat)
    # The first chunk is awaited here so that errors before any output (unknown model,
    # budget, provider down) are answered with their status, not inside a 200 stream.
    first = await anext(chunks, None)
    if first is None:
        raise ProviderError(chat.model or "", "The provider returned an empty stream.")
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    return StreamingResponse(
        _event_stream(first, chunks, include_usage=include_usage),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/v1/models", responses=AI_ERRORS)
async def list_models(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    """The models callers may name; the first is the default."""
    require_ai_scope(principal)
    cards = await llm_of(services).models()
    return {"object": "list", "data": [card.to_openai() for card in cards]}
