"""The ``demo`` model: replays a scripted session in-process, offline, for newcomers.

It does not understand prompts. Each reply is chosen by how many assistant turns the
conversation already has, so a conversation replays the same session every time. It is offered
only when no model file is configured and ``VIBECODE_LLM__DEMO`` is on (the development default).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from serve_apps.llm_router.scripted import ScriptedReply, completion_payload, stream_payloads
from serve_apps.llm_router.types import ChatChunk, ChatRequest, ChatResponse, ModelCard

__all__ = ["DEMO_MODEL", "DEMO_SESSION", "DemoBackend"]

DEMO_MODEL = "demo"

DEMO_SESSION: tuple[ScriptedReply, ...] = (
    ScriptedReply.text(
        "Hello from Vibecode's offline demo model. I replay a scripted session and do not "
        "read your prompt. To use a real model, write a YAML file in litellm's router format "
        "(model_list: [{model_name: fast, litellm_params: {model: openai/gpt-4o-mini, "
        "api_key: os.environ/OPENAI_API_KEY}}]) and start Vibecode with "
        "VIBECODE_LLM_CONFIG=<path to that file>."
    ),
)


class DemoBackend:
    """A ``ChatBackend`` with one model, ``demo``, that plays ``session`` turn by turn."""

    def __init__(self, session: Sequence[ScriptedReply] = DEMO_SESSION) -> None:
        if not session:
            raise ValueError("the demo session needs at least one reply")
        self._session = tuple(session)

    def model_cards(self) -> list[ModelCard]:
        return [ModelCard(id=DEMO_MODEL, owned_by="vibecode-demo", default=True, demo=True)]

    def resolve(self, name: str | None) -> str | None:
        return DEMO_MODEL if name in (None, DEMO_MODEL) else None

    def provider_of(self, model: str) -> str:
        return "vibecode-demo"

    def _reply(self, messages: list[dict[str, Any]]) -> ScriptedReply:
        turns = sum(1 for message in messages if message.get("role") == "assistant")
        return self._session[min(turns, len(self._session) - 1)]

    async def complete(
        self, request: ChatRequest, *, model: str, api_key: str | None
    ) -> ChatResponse:
        reply = self._reply(request.messages)
        payload = completion_payload(reply, model=model, messages=request.messages)
        return ChatResponse.from_openai(payload, model=model, cost_usd=0.0)

    async def stream(
        self, request: ChatRequest, *, model: str, api_key: str | None
    ) -> AsyncIterator[ChatChunk]:
        reply = self._reply(request.messages)
        payloads = stream_payloads(
            reply, model=model, messages=request.messages, include_usage=True
        )
        for payload in payloads:
            chunk = ChatChunk.from_openai(payload, model=model)
            if chunk.usage is not None:
                chunk = chunk.model_copy(
                    update={"usage": chunk.usage.model_copy(update={"cost_usd": 0.0})}
                )
            yield chunk
