"""The ``demo`` model: replays a scripted session in-process, offline, for newcomers.

It does not understand prompts. Each reply is chosen by how many assistant turns the
conversation already has, so a conversation replays the same session every time. It is offered
only when no model file is configured and ``VIBECODE_LLM__DEMO`` is on (the development default).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from serve_apps.llm_router.scripted import ScriptedReply, completion_payload, stream_payloads
from serve_apps.llm_router.types import ChatChunk, ChatRequest, ChatResponse, ModelCard

__all__ = ["DEMO_AGENT_SESSION", "DEMO_MODEL", "DEMO_SESSION", "DemoBackend"]

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


_DEMO_HELLO = (
    "# Written by Vibecode's offline demo model (a scripted session, not a real model).\n"
    'print("Hello from the Vibecode demo!")\n'
)
# What a coding agent (a request that offers tools) sees: the agent's real tools, in order.
DEMO_AGENT_SESSION: tuple[ScriptedReply, ...] = (
    ScriptedReply.tool_call("write_file", {"path": "hello.py", "content": _DEMO_HELLO}),
    ScriptedReply.tool_call("run_command", {"command": "python3 hello.py"}),
    ScriptedReply.tool_call(
        "finish",
        {
            "summary": (
                "[DEMO] This run was played by the offline demo model, which replays a "
                "scripted session and ignores your prompt: it wrote hello.py and ran it. "
                "To use a real model, set VIBECODE_LLM_CONFIG to a YAML file in litellm's "
                "router format and restart."
            )
        },
    ),
)


class DemoBackend:
    """A ``ChatBackend`` with one model, ``demo``, that plays ``session`` turn by turn
    (``agent_session`` when the request offers tools, as the coding agent's do)."""

    def __init__(
        self,
        session: Sequence[ScriptedReply] = DEMO_SESSION,
        agent_session: Sequence[ScriptedReply] = DEMO_AGENT_SESSION,
    ) -> None:
        if not session or not agent_session:
            raise ValueError("the demo session needs at least one reply")
        self._session = tuple(session)
        self._agent_session = tuple(agent_session)

    def model_cards(self) -> list[ModelCard]:
        return [ModelCard(id=DEMO_MODEL, owned_by="vibecode-demo", default=True, demo=True)]

    def resolve(self, name: str | None) -> str | None:
        return DEMO_MODEL if name in (None, DEMO_MODEL) else None

    def provider_of(self, model: str) -> str:
        return "vibecode-demo"

    def _reply(self, request: ChatRequest) -> ScriptedReply:
        session = self._agent_session if request.tools else self._session
        turns = sum(1 for message in request.messages if message.get("role") == "assistant")
        return session[min(turns, len(session) - 1)]

    async def complete(
        self, request: ChatRequest, *, model: str, api_key: str | None
    ) -> ChatResponse:
        reply = self._reply(request)
        payload = completion_payload(reply, model=model, messages=request.messages)
        return ChatResponse.from_openai(payload, model=model, cost_usd=0.0)

    async def stream(
        self, request: ChatRequest, *, model: str, api_key: str | None
    ) -> AsyncIterator[ChatChunk]:
        reply = self._reply(request)
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
