"""``LLMClient`` over a Serve handle to ``LLMRouterDeployment`` (in-process: ``LLMRouter``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from ray.exceptions import RayTaskError

from serve_apps.llm_router.errors import LLMError
from serve_apps.llm_router.types import ChatChunk, ChatRequest, ChatResponse, ModelCard

__all__ = ["ServeLLMClient"]

T = TypeVar("T")


def _unwrap(exc: RayTaskError) -> BaseException:
    """The domain error a replica raised, as itself (not Ray's wrapper), else the wrapper."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, LLMError) else exc


class ServeLLMClient:
    """Calls the router deployment; its domain errors are re-raised unchanged."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._streaming = handle.options(stream=True)

    async def _call(self, response: Awaitable[T]) -> T:
        try:
            return await response
        except RayTaskError as exc:
            raise _unwrap(exc) from None

    async def complete(self, request: ChatRequest) -> ChatResponse:
        result: ChatResponse = await self._call(self._handle.complete.remote(request))
        return result

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        try:
            async for chunk in self._streaming.stream.remote(request):
                yield chunk
        except RayTaskError as exc:
            raise _unwrap(exc) from None

    async def models(self) -> list[ModelCard]:
        cards: list[ModelCard] = await self._call(self._handle.models.remote())
        return cards
