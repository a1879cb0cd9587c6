"""``LLMRouter``: the AI-routing core, a plain async class (the Serve deployment is its shell).

For each call: resolve the model name (aliases, the default), refuse with ``BudgetExceeded``
when the run's or the user's budget is spent, use the user's own provider key when they stored
one, call the backend (which retries, falls back and times out), then record the usage
(unless the caller records it in its own transaction, as an agent run does with its log).

A replica keeps what it read of a user's provider keys and spend today for
``LLMSettings.cache_ttl_s`` (5 s by default; see ``budgets.py``), so a call reads neither on
the way to the model; a key a user stores, replaces or deletes takes effect within that bound.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from serve_apps.llm_router.budgets import BudgetGuard
from serve_apps.llm_router.errors import LLMError, LLMNotConfigured, ModelNotFound
from serve_apps.llm_router.ports import ChatBackend
from serve_apps.llm_router.provider_keys import ProviderKeyStore, open_provider_key_store
from serve_apps.llm_router.settings import LLMSettings
from serve_apps.llm_router.ttl_cache import TTLCache
from serve_apps.llm_router.types import (
    CallContext,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ModelCard,
    Usage,
)
from serve_apps.llm_router.usage import UsageRecorder
from state.db import Database

__all__ = ["LLMRouter", "open_backend", "open_llm_router"]

log = structlog.get_logger("llm.router")


class LLMRouter:
    """Implements ``LLMClient`` in-process. ``recorder``/``keys`` None: no usage, no own keys."""

    def __init__(
        self,
        backend: ChatBackend,
        *,
        settings: LLMSettings,
        recorder: UsageRecorder | None = None,
        keys: ProviderKeyStore | None = None,
    ) -> None:
        self._backend = backend
        self._settings = settings
        self._recorder = recorder
        self._budgets = BudgetGuard(recorder, settings) if recorder is not None else None
        self._keys = keys
        self._known_keys: TTLCache[tuple[str, str], str | None] = TTLCache(
            ttl_s=settings.cache_ttl_s
        )

    @property
    def backend(self) -> ChatBackend:
        return self._backend

    async def models(self) -> list[ModelCard]:
        return self._backend.model_cards()

    async def complete(self, request: ChatRequest) -> ChatResponse:
        model, api_key = await self._prepare(request)
        started = time.perf_counter()
        try:
            response = await self._backend.complete(request, model=model, api_key=api_key)
        except LLMError as exc:
            self._log_failure(exc, model, request.context, started)
            raise
        await self._record(response.usage, model, request.context)
        log.debug(
            "llm.completed",
            model=model,
            served_by=response.served_by,
            prompt_tokens=response.usage.prompt_tokens,
            completion_tokens=response.usage.completion_tokens,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        model, api_key = await self._prepare(request)
        started = time.perf_counter()
        usage: Usage | None = None
        try:
            async for chunk in self._backend.stream(request, model=model, api_key=api_key):
                usage = chunk.usage or usage
                yield chunk
        except LLMError as exc:
            self._log_failure(exc, model, request.context, started)
            raise
        finally:
            # Also when the consumer stops early: what was reported is what was used.
            if usage is not None:
                await self._record(usage, model, request.context)

    # -- steps -----------------------------------------------------------------------------

    async def _prepare(self, request: ChatRequest) -> tuple[str, str | None]:
        model = self._backend.resolve(request.model)
        if model is None:
            available = [card.id for card in self._backend.model_cards()]
            raise ModelNotFound(request.model or "", available)
        if self._budgets is not None:
            await self._budgets.check(request.context)
        api_key = None
        user_id = request.context.user_id
        if self._keys is not None and user_id is not None:
            api_key = await self._key_for(self._keys, user_id, self._backend.provider_of(model))
        return model, api_key

    async def _key_for(self, keys: ProviderKeyStore, user_id: str, provider: str) -> str | None:
        """The user's own key for ``provider`` (or None), read at most once per cache TTL."""
        known, api_key = self._known_keys.get((user_id, provider))
        if known:
            return api_key
        api_key = await keys.key_for(user_id, provider)
        self._known_keys.put((user_id, provider), api_key)
        return api_key

    async def _record(self, usage: Usage, model: str, context: CallContext) -> None:
        if self._recorder is None:
            return
        if not context.usage_recorded_by_caller:
            await self._recorder.record(
                usage,
                model=model,
                user_id=context.user_id,
                workspace_id=context.workspace_id,
                run_id=context.run_id,
            )
        if self._budgets is not None:
            self._budgets.recorded(context, usage.cost_usd or 0.0)

    @staticmethod
    def _log_failure(exc: LLMError, model: str, context: CallContext, started: float) -> None:
        log.warning(
            "llm.failed",
            model=model,
            error=type(exc).__name__,
            detail=exc.detail,
            run_id=context.run_id,
            request_id=context.request_id,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )


def open_backend(settings: LLMSettings) -> ChatBackend | None:
    """The backend the settings choose: the model file, the demo model, or None (no model)."""
    match settings:
        case LLMSettings(config_path=Path() as path):
            from serve_apps.llm_router.config import load_model_config
            from serve_apps.llm_router.litellm_router import LiteLLMBackend

            return LiteLLMBackend(load_model_config(path), settings)
        case LLMSettings(demo=True):
            from serve_apps.llm_router.demo import DemoBackend

            return DemoBackend()
        case _:
            return None


def open_llm_router(settings: LLMSettings, *, db: Database | None) -> LLMRouter:
    """Build the router the settings describe; raise ``LLMNotConfigured`` when no model is and
    ``LLMConfigError`` when the model file is invalid. No network: litellm loads on first call.

    With ``db``, usage is recorded, budgets enforced and users' own keys used (when a key
    encryption key is set).
    """
    backend = open_backend(settings)
    if backend is None:
        raise LLMNotConfigured()
    recorder = UsageRecorder(db) if db is not None else None
    keys = open_provider_key_store(db, settings) if db is not None else None
    return LLMRouter(backend, settings=settings, recorder=recorder, keys=keys)
