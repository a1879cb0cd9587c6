"""Value types of AI routing: requests, responses, stream chunks and usage (OpenAI-shaped).

Frozen pydantic models: they cross Ray Serve handles and are what every backend returns, never
an SDK object. ``to_openai()`` renders the OpenAI wire format the ``/v1`` routes send.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "LLM_USAGE_KIND",
    "CallContext",
    "ChatChunk",
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "ModelCard",
    "StreamAccumulator",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
]

_FROZEN = ConfigDict(frozen=True)
# ``usage_records.kind`` of a model call.
LLM_USAGE_KIND = "llm"


class CallContext(BaseModel):
    """Who a call is for: usage is recorded against these ids and budgets checked for them."""

    model_config = _FROZEN

    user_id: str | None = None
    workspace_id: str | None = None
    run_id: str | None = None
    # The run's budget: refused with BudgetExceeded once the run's recorded cost reaches it.
    run_budget_usd: float | None = None
    # The run's spend so far as its caller counts it (the agent run is the single writer of
    # its log, which holds every call's cost): when set, the run budget is checked against it
    # instead of summing the run's usage records. Set by the platform's own callers only.
    run_spent_usd: float | None = None
    # The caller stores this call's usage record itself, in the transaction that logs the call
    # (an agent run, with its log's usage event); the router then only counts it for budgets.
    usage_recorded_by_caller: bool = False
    request_id: str | None = None


class ChatRequest(BaseModel):
    """An OpenAI chat-completions request. ``model=None`` means the default (first) model.

    ``params`` carries any other OpenAI parameter (``seed``, ``response_format``, ...) as is.
    """

    model_config = _FROZEN

    messages: list[dict[str, Any]]
    model: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = None
    context: CallContext = Field(default_factory=CallContext)

    def provider_params(self) -> dict[str, Any]:
        """The OpenAI parameters to send, without the ones left unset."""
        fields = {
            "tools": self.tools,
            "tool_choice": self.tool_choice,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
        }
        return {**self.params, **{k: v for k, v in fields.items() if v is not None}}


class Usage(BaseModel):
    """Tokens of one call and its cost; ``cost_usd`` is None when the price is unknown."""

    model_config = _FROZEN

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }

    @classmethod
    def from_openai(cls, usage: Any, *, cost_usd: float | None = None) -> Usage:
        if not isinstance(usage, dict):
            return cls(cost_usd=cost_usd)
        cost = usage.get("cost") if cost_usd is None else cost_usd
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cost_usd=float(cost) if isinstance(cost, int | float) else None,
        )


class ToolCall(BaseModel):
    """A function call. ``arguments`` is the JSON text exactly as the model wrote it (it may be
    malformed: parsing it, and reporting a failure to the model, is the caller's job)."""

    model_config = _FROZEN

    id: str
    name: str
    arguments: str = ""

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


class ChatMessage(BaseModel):
    """The assistant's message; ``to_openai()`` is ready to append to the history."""

    model_config = _FROZEN

    role: str = "assistant"
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    def to_openai(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        return message


class ChatResponse(BaseModel):
    """One completed call. ``model`` is the name asked for; ``served_by`` the configured model
    that answered (differs after a fallback) when known."""

    model_config = _FROZEN

    id: str
    created: int
    model: str
    message: ChatMessage
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    served_by: str | None = None

    @classmethod
    def from_openai(
        cls, payload: dict[str, Any], *, model: str, cost_usd: float | None = None
    ) -> ChatResponse:
        choice = (payload.get("choices") or [{}])[0]
        raw = choice.get("message") or {}
        calls = tuple(
            ToolCall(
                id=str(call.get("id") or ""),
                name=str((call.get("function") or {}).get("name") or ""),
                arguments=str((call.get("function") or {}).get("arguments") or ""),
            )
            for call in raw.get("tool_calls") or ()
        )
        return cls(
            id=str(payload.get("id") or ""),
            created=int(payload.get("created") or 0),
            model=model,
            message=ChatMessage(content=raw.get("content"), tool_calls=calls),
            finish_reason=choice.get("finish_reason"),
            usage=Usage.from_openai(payload.get("usage"), cost_usd=cost_usd),
        )

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": self.message.to_openai(),
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": self.usage.to_openai(),
        }


class ToolCallDelta(BaseModel):
    """A piece of a streamed tool call; pieces with the same ``index`` concatenate."""

    model_config = _FROZEN

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None

    def to_openai(self) -> dict[str, Any]:
        function = {k: v for k, v in (("name", self.name), ("arguments", self.arguments)) if v}
        delta: dict[str, Any] = {"index": self.index, "function": function}
        if self.id:
            delta.update(id=self.id, type="function")
        return delta


class ChatChunk(BaseModel):
    """One streamed piece. The last chunk of a stream carries ``usage``."""

    model_config = _FROZEN

    id: str
    created: int
    model: str
    role: str | None = None
    content: str | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None

    @classmethod
    def from_openai(cls, payload: dict[str, Any], *, model: str) -> ChatChunk:
        choices = payload.get("choices") or []
        choice = choices[0] if choices else {}
        delta = choice.get("delta") or {}
        calls = tuple(
            ToolCallDelta(
                index=int(call.get("index") or 0),
                id=call.get("id"),
                name=(call.get("function") or {}).get("name"),
                arguments=(call.get("function") or {}).get("arguments"),
            )
            for call in delta.get("tool_calls") or ()
        )
        usage = payload.get("usage")
        return cls(
            id=str(payload.get("id") or ""),
            created=int(payload.get("created") or 0),
            model=model,
            role=delta.get("role"),
            content=delta.get("content"),
            tool_calls=calls,
            finish_reason=choice.get("finish_reason"),
            usage=Usage.from_openai(usage) if usage else None,
        )

    def to_openai(self) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        if self.role:
            delta["role"] = self.role
        if self.content is not None:
            delta["content"] = self.content
        if self.tool_calls:
            delta["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        payload: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": self.finish_reason}],
        }
        if self.usage is not None:
            payload["usage"] = self.usage.to_openai()
            if not delta and self.finish_reason is None:
                payload["choices"] = []
        return payload


class StreamAccumulator:
    """Builds the ``ChatResponse`` a stream amounts to: ``add`` every chunk, then ``response``."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = ""
        self.created = 0
        self.content: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    def add(self, chunk: ChatChunk) -> None:
        self.id = self.id or chunk.id
        self.created = self.created or chunk.created
        if chunk.content:
            self.content.append(chunk.content)
        for delta in chunk.tool_calls:
            call = self.calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = delta.id or call["id"]
            call["name"] += delta.name or ""
            call["arguments"] += delta.arguments or ""
        self.finish_reason = chunk.finish_reason or self.finish_reason
        self.usage = chunk.usage or self.usage

    def response(self) -> ChatResponse:
        calls = tuple(ToolCall(**self.calls[index]) for index in sorted(self.calls))
        return ChatResponse(
            id=self.id,
            created=self.created,
            model=self.model,
            message=ChatMessage(content="".join(self.content) or None, tool_calls=calls),
            finish_reason=self.finish_reason,
            usage=self.usage or Usage(),
        )


class ModelCard(BaseModel):
    """A model offered to callers (``/v1/models``)."""

    model_config = _FROZEN

    id: str
    owned_by: str
    default: bool = False
    demo: bool = False

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "object": "model", "created": 0, "owned_by": self.owned_by}
