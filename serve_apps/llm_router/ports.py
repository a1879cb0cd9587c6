"""The ports of AI routing: ``LLMClient`` for callers, ``ChatBackend`` for what serves models.

``LLMRouter`` is the in-process ``LLMClient`` (tests, bare uvicorn); ``ServeLLMClient`` reaches
the ``LLMRouterDeployment`` through a Serve handle. Both raise the errors of ``errors.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from serve_apps.llm_router.types import ChatChunk, ChatRequest, ChatResponse, ModelCard

__all__ = ["ChatBackend", "LLMClient"]


class LLMClient(Protocol):
    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Run one chat completion; usage is recorded and budgets checked before the call."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        """Stream one chat completion; the last chunk carries ``usage``. Errors before the
        first chunk raise from the first ``__anext__``."""
        ...

    async def models(self) -> list[ModelCard]:
        """The models offered, the default first."""
        ...


class ChatBackend(Protocol):
    """Serves configured model names. ``model`` is always a configured name (never an alias)."""

    def model_cards(self) -> list[ModelCard]: ...

    def resolve(self, name: str | None) -> str | None:
        """The configured name for ``name`` (None: the default model), or None if unknown."""
        ...

    def provider_of(self, model: str) -> str:
        """The provider whose API key ``model`` uses (``openai``, ``anthropic``, ...)."""
        ...

    async def complete(
        self, request: ChatRequest, *, model: str, api_key: str | None
    ) -> ChatResponse: ...

    def stream(
        self, request: ChatRequest, *, model: str, api_key: str | None
    ) -> AsyncIterator[ChatChunk]: ...
