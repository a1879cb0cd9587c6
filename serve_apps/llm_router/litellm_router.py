"""The one module that imports litellm: a ``ChatBackend`` over ``litellm.Router``.

litellm is imported on first use, in a worker thread (the import takes seconds), with the local
cost map (no download at import) and Hugging Face offline. Its exceptions are translated here,
in one table, into the errors of ``errors.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import structlog

from serve_apps.llm_router.config import ModelConfig
from serve_apps.llm_router.errors import (
    ContextWindowExceeded,
    InvalidModelRequest,
    LLMError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
)
from serve_apps.llm_router.settings import LLMSettings
from serve_apps.llm_router.types import ChatChunk, ChatRequest, ChatResponse, ModelCard

__all__ = ["LiteLLMBackend", "import_litellm"]

log = structlog.get_logger("llm.litellm")

_LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
MAX_DETAIL_CHARS = 500

ErrorFactory = Callable[[Exception, str, str], LLMError]


def import_litellm(settings: LLMSettings) -> ModuleType:
    """Import and configure litellm for this process (idempotent)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import litellm
    import litellm.utils

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    # Failures are logged once, as structured events, by the router; litellm's own log lines
    # repeat each failure with configuration advice.
    for name in _LITELLM_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # The backoff between retries (litellm reads these module constants on every retry).
    setattr(litellm.utils, "INITIAL_RETRY_DELAY", settings.retry_initial_delay_s)  # noqa: B010
    setattr(litellm.utils, "MAX_RETRY_DELAY", settings.retry_max_delay_s)  # noqa: B010
    setattr(litellm.utils, "JITTER", settings.retry_jitter_s)  # noqa: B010
    return litellm


def _detail(exc: Exception) -> str:
    # litellm appends multi-line configuration advice; the first line says what happened.
    text = str(getattr(exc, "message", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:MAX_DETAIL_CHARS]


def _retry_after_s(exc: Exception) -> float | None:
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_table(litellm: ModuleType) -> tuple[tuple[type[Exception], ErrorFactory], ...]:
    """litellm exception -> domain error, most specific first."""
    import openai

    def status(exc: Exception) -> int | None:
        value = getattr(exc, "status_code", None)
        return value if isinstance(value, int) else None

    return (
        (litellm.ContextWindowExceededError, lambda e, m, d: ContextWindowExceeded(m, d)),
        (litellm.RateLimitError, lambda e, m, d: RateLimited(m, d, _retry_after_s(e))),
        (litellm.Timeout, lambda e, m, d: ProviderTimeout(m, d)),
        (openai.APITimeoutError, lambda e, m, d: ProviderTimeout(m, d)),
        (litellm.AuthenticationError, lambda e, m, d: ProviderError(m, d, status(e) or 401)),
        (litellm.PermissionDeniedError, lambda e, m, d: ProviderError(m, d, status(e) or 403)),
        (litellm.NotFoundError, lambda e, m, d: ProviderError(m, d, status(e) or 404)),
        (litellm.BadRequestError, lambda e, m, d: InvalidModelRequest(m, d)),
        (litellm.UnprocessableEntityError, lambda e, m, d: InvalidModelRequest(m, d)),
        (openai.APIStatusError, lambda e, m, d: ProviderError(m, d, status(e))),
        (openai.OpenAIError, lambda e, m, d: ProviderError(m, d, status(e))),
    )


class LiteLLMBackend:
    """Configured models through one ``litellm.Router`` (built on first use)."""

    def __init__(self, config: ModelConfig, settings: LLMSettings) -> None:
        self._config = config
        self._settings = settings
        self._router: Any = None
        self._errors: tuple[tuple[type[Exception], ErrorFactory], ...] = ()
        self._lock = asyncio.Lock()

    # -- the model catalogue (no litellm needed) ----------------------------------------------

    def model_cards(self) -> list[ModelCard]:
        default = self._config.default_model
        return [
            ModelCard(id=name, owned_by=self._config.provider_of(name), default=name == default)
            for name in self._config.model_names
        ]

    def resolve(self, name: str | None) -> str | None:
        return self._config.default_model if name is None else self._config.resolve(name)

    def provider_of(self, model: str) -> str:
        return self._config.provider_of(model)

    # -- calls ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Import litellm and build the router now (otherwise the first call does)."""
        await self._ready()

    async def _ready(self) -> Any:
        if self._router is None:
            async with self._lock:
                if self._router is None:
                    self._router = await asyncio.to_thread(self._build)
        return self._router

    def _build(self) -> Any:
        litellm = import_litellm(self._settings)
        self._errors = _error_table(litellm)
        options = self._config.router_settings
        extra = options.model_dump(
            include={"stream_timeout", "allowed_fails", "cooldown_time", "routing_strategy"},
            exclude_none=True,
        )
        num_retries = self._settings.num_retries
        router = litellm.Router(
            model_list=[entry.model_dump() for entry in self._config.model_list],
            num_retries=num_retries if options.num_retries is None else options.num_retries,
            timeout=options.timeout or self._settings.request_timeout_s,
            retry_after=0,
            fallbacks=list(options.fallbacks),
            context_window_fallbacks=list(options.context_window_fallbacks),
            model_group_alias=dict(options.model_group_alias),
            **extra,
        )
        log.info("llm.router_ready", models=self._config.model_names)
        return router

    def _kwargs(self, request: ChatRequest, model: str, api_key: str | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            **request.provider_params(),
            "model": model,
            "messages": request.messages,
        }
        if api_key is not None:
            kwargs["api_key"] = api_key
        if request.timeout_s is not None:
            kwargs["timeout"] = request.timeout_s
        return kwargs

    @contextmanager
    def _translated(self, model: str) -> Iterator[None]:
        try:
            yield
        except LLMError:
            raise
        except Exception as exc:
            for kind, factory in self._errors:
                if isinstance(exc, kind):
                    raise factory(exc, model, _detail(exc)) from exc
            raise

    async def complete(
        self, request: ChatRequest, *, model: str, api_key: str | None
    ) -> ChatResponse:
        router = await self._ready()
        with self._translated(model):
            response = await router.acompletion(**self._kwargs(request, model, api_key))
        hidden: dict[str, Any] = getattr(response, "_hidden_params", None) or {}
        cost = hidden.get("response_cost")
        served_by = (hidden.get("additional_headers") or {}).get("x-litellm-model-group")
        result = ChatResponse.from_openai(
            response.model_dump(),
            model=model,
            cost_usd=float(cost) if isinstance(cost, int | float) else None,
        )
        return result.model_copy(update={"served_by": served_by or model})

    async def stream(
        self, request: ChatRequest, *, model: str, api_key: str | None
    ) -> AsyncIterator[ChatChunk]:
        router = await self._ready()
        kwargs = self._kwargs(request, model, api_key)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        with self._translated(model):
            response = await router.acompletion(**kwargs)
            async for chunk in response:
                yield ChatChunk.from_openai(chunk.model_dump(), model=model)
