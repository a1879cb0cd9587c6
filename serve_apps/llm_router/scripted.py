"""Scripted model replies rendered as OpenAI chat-completions payloads.

One engine serves two callers: the offline test server (``tests/harness/fake_openai.py``), which
sends these payloads over real HTTP so that litellm parses them exactly as a provider's, and the
``demo`` model, which replays a session in-process for newcomers without a provider.

A ``Script`` holds a queue of replies per model name and rules matched on the last user
message. ``next_reply`` prefers a matching rule, then the model's queue, then the ``*`` queue
(any model), then the default reply.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ANY_MODEL",
    "Script",
    "ScriptedReply",
    "ScriptedToolCall",
    "completion_payload",
    "error_payload",
    "last_user_text",
    "stream_payloads",
]

ANY_MODEL = "*"
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class ScriptedToolCall:
    """A function call the model makes. ``arguments`` is sent verbatim when it is a string
    (so a test can send malformed JSON), JSON-encoded otherwise."""

    name: str
    arguments: str | Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass(frozen=True, slots=True)
class ScriptedReply:
    """One reply: a message (text and/or tool calls) or an HTTP error, optionally slow.

    ``delay_s`` passes before the response starts; ``chunk_delay_s`` between streamed chunks.
    ``prompt_tokens``/``completion_tokens`` default to rough counts of the request and reply.
    ``error_status`` makes it an error with ``error_body`` (OpenAI's ``{"error": {...}}``).
    """

    content: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    error_status: int | None = None
    error_body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def text(cls, content: str, **options: Any) -> ScriptedReply:
        return cls(content=content, **options)

    @classmethod
    def tool_call(
        cls, name: str, arguments: str | Mapping[str, Any] | None = None, **options: Any
    ) -> ScriptedReply:
        call = ScriptedToolCall(name=name, arguments={} if arguments is None else arguments)
        return cls(tool_calls=(call,), **options)

    @classmethod
    def tool_calls_of(
        cls, *calls: ScriptedToolCall, content: str | None = None, **options: Any
    ) -> ScriptedReply:
        return cls(content=content, tool_calls=tuple(calls), **options)

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "scripted failure",
        *,
        type_: str = "server_error",
        code: str | None = None,
        **options: Any,
    ) -> ScriptedReply:
        body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        return cls(error_status=status, error_body=body, **options)

    @classmethod
    def rate_limited(cls, retry_after_s: int = 0, **options: Any) -> ScriptedReply:
        return cls.error(
            429,
            "Rate limit reached for requests",
            type_="requests",
            code="rate_limit_exceeded",
            headers={"retry-after": str(retry_after_s)},
            **options,
        )

    @classmethod
    def context_length_exceeded(cls, **options: Any) -> ScriptedReply:
        """OpenAI's exact 400 body, which litellm maps to ``ContextWindowExceededError``."""
        message = (
            "This model's maximum context length is 8192 tokens. However, your messages "
            "resulted in 9000 tokens. Please reduce the length of the messages."
        )
        return cls.error(
            400,
            message,
            type_="invalid_request_error",
            code="context_length_exceeded",
            **options,
        )

    @property
    def is_error(self) -> bool:
        return self.error_status is not None


class Script:
    """Replies to play, per model and per matching user message. Thread-safe."""

    def __init__(self, default: ScriptedReply | None = None) -> None:
        self.default = default
        self._queues: dict[str, deque[ScriptedReply]] = {}
        self._rules: list[tuple[str, str, deque[ScriptedReply], bool]] = []
        self._lock = threading.Lock()

    def add(self, model: str, *replies: ScriptedReply) -> Script:
        """Queue ``replies`` for ``model`` (``"*"``: any model), played once each, in order."""
        with self._lock:
            self._queues.setdefault(model, deque()).extend(replies)
        return self

    def on_message(
        self,
        contains: str,
        *replies: ScriptedReply,
        model: str = ANY_MODEL,
        repeat: bool = False,
    ) -> Script:
        """When the last user message contains ``contains`` (case-insensitive), play
        ``replies`` in order; with ``repeat`` the last one keeps answering once reached."""
        with self._lock:
            self._rules.append((contains.lower(), model, deque(replies), repeat))
        return self

    def pending(self, model: str | None = None) -> int:
        """How many queued replies (for ``model``, or all) have not been played."""
        with self._lock:
            if model is not None:
                return len(self._queues.get(model, ()))
            return sum(len(queue) for queue in self._queues.values())

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()
            self._rules.clear()

    def next_reply(self, model: str, messages: Sequence[Mapping[str, Any]]) -> ScriptedReply | None:
        """The reply to play now, or None when nothing is scripted for this request."""
        text = last_user_text(messages).lower()
        with self._lock:
            for contains, rule_model, replies, repeat in self._rules:
                if rule_model not in (ANY_MODEL, model) or contains not in text or not replies:
                    continue
                if repeat and len(replies) == 1:
                    return replies[0]
                return replies.popleft()
            for name in (model, ANY_MODEL):
                queue = self._queues.get(name)
                if queue:
                    return queue.popleft()
        return self.default


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last ``user`` message ("" if none); list contents are joined."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                str(part.get("text", "")) for part in content if isinstance(part, Mapping)
            )
        return ""
    return ""


def _count_tokens(text: str) -> int:
    # A rough, deterministic count (about four characters a token) for scripted usage.
    return max(1, len(text) // 4)


def _usage(reply: ScriptedReply, messages: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    prompt = reply.prompt_tokens
    if prompt is None:
        prompt = sum(_count_tokens(json.dumps(m.get("content"))) for m in messages)
    completion = reply.completion_tokens
    if completion is None:
        produced = (reply.content or "") + "".join(
            call.name + call.arguments_json for call in reply.tool_calls
        )
        completion = _count_tokens(produced)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _finish_reason(reply: ScriptedReply) -> str:
    if reply.finish_reason is not None:
        return reply.finish_reason
    return "tool_calls" if reply.tool_calls else "stop"


def _call_id(call: ScriptedToolCall) -> str:
    return call.id or f"call_{next(_ids):06d}"


def completion_payload(
    reply: ScriptedReply, *, model: str, messages: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """A ``chat.completion`` object for a non-error reply."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": _call_id(call),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for call in reply.tool_calls
        ]
    return {
        "id": f"chatcmpl-{next(_ids):08d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(reply)}],
        "usage": _usage(reply, messages),
    }


def stream_payloads(
    reply: ScriptedReply,
    *,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    include_usage: bool,
) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed reply, as OpenAI sends them:
    a role chunk, content in pieces, tool calls (name first, then arguments in two parts),
    a finish chunk, and with ``include_usage`` a last chunk with empty choices and usage."""
    base = {
        "id": f"chatcmpl-{next(_ids):08d}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    content = reply.content or ""
    for start in range(0, len(content), 8):
        chunks.append(chunk({"content": content[start : start + 8]}))
    for index, call in enumerate(reply.tool_calls):
        arguments = call.arguments_json
        half = len(arguments) // 2
        head = {"index": index, "id": _call_id(call), "type": "function"}
        chunks.append(chunk({"tool_calls": [{**head, "function": {"name": call.name}}]}))
        for part in (arguments[:half], arguments[half:]):
            chunks.append(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            )
    chunks.append(chunk({}, _finish_reason(reply)))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": _usage(reply, messages)})
    return chunks


def error_payload(reply: ScriptedReply) -> dict[str, Any]:
    """The JSON body of an error reply."""
    if reply.error_body is not None:
        return dict(reply.error_body)
    return {"error": {"message": "scripted failure", "type": "server_error", "code": None}}
