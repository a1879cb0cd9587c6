"""Context management: estimate a history's tokens and condense it to fit a budget.

Condensing is deterministic (no extra model call) and never changes the log: the full history
is rebuilt from events and condensed again for each model call. In order, until the estimate
fits: elide the tool outputs of older turns; replace older turns by a one-line-per-action
summary; keep fewer recent turns; shorten the outputs that remain.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["condense", "estimate_tokens"]

Message = dict[str, Any]
# About four characters a token for English and code: a deliberately rough, cheap estimate.
_CHARS_PER_TOKEN = 4
_SHORT_OUTPUT_CHARS = 400


def estimate_tokens(messages: list[Message], tools: list[dict[str, Any]] | None = None) -> int:
    size = len(json.dumps(messages, separators=(",", ":")))
    if tools:
        size += len(json.dumps(tools, separators=(",", ":")))
    return size // _CHARS_PER_TOKEN + 4 * len(messages)


def _turns(history: list[Message]) -> list[list[Message]]:
    """Split messages after the prompt into turns: each starts at an assistant message."""
    turns: list[list[Message]] = []
    for message in history:
        if message.get("role") == "assistant" or not turns:
            turns.append([])
        turns[-1].append(message)
    return turns


def _elided(message: Message, keep_chars: int) -> Message:
    content = message.get("content")
    if message.get("role") != "tool" or not isinstance(content, str) or len(content) <= keep_chars:
        return message
    head = content[:keep_chars]
    return {**message, "content": f"{head}\n[... {len(content) - keep_chars} characters elided]"}


def _summary_line(turn: list[Message]) -> list[str]:
    assistant = turn[0]
    results = {m.get("tool_call_id"): str(m.get("content") or "") for m in turn[1:]}
    lines: list[str] = []
    if assistant.get("content"):
        lines.append(f"- said: {str(assistant['content'])[:200]}")
    for call in assistant.get("tool_calls") or ():
        function = call.get("function") or {}
        arguments = str(function.get("arguments") or "")[:160]
        outcome = results.get(call.get("id"), "").splitlines()
        first = outcome[0][:160] if outcome else "(no result)"
        lines.append(f"- {function.get('name')}({arguments}) -> {first}")
    return lines


def condense(
    messages: list[Message],
    *,
    budget_tokens: int,
    keep_recent_turns: int,
    tools: list[dict[str, Any]] | None = None,
) -> tuple[list[Message], int]:
    """``messages`` (system prompt and task first) made to fit ``budget_tokens`` if possible.

    Return the messages to send and how many older turns were summarized. The first two
    messages (the system prompt and the task) are always kept whole."""
    if estimate_tokens(messages, tools) <= budget_tokens:
        return messages, 0
    head, turns = messages[:2], _turns(messages[2:])
    keep = min(keep_recent_turns, len(turns))
    while True:
        old, recent = turns[: len(turns) - keep], turns[len(turns) - keep :]
        # 1. Older tool outputs go first: the model acted on them already.
        candidate = head + [_elided(m, 0) for t in old for m in t] + [m for t in recent for m in t]
        if estimate_tokens(candidate, tools) <= budget_tokens:
            return candidate, 0
        # 2. Older turns become a summary, one line per action.
        summary_lines = [line for t in old for line in _summary_line(t)]
        summary = (
            [{"role": "user", "content": "Summary of earlier steps (condensed):\n"
              + "\n".join(summary_lines)}]
            if summary_lines
            else []
        )  # fmt: skip
        candidate = head + summary + [m for t in recent for m in t]
        if estimate_tokens(candidate, tools) <= budget_tokens or keep <= 1:
            break
        keep -= 1
    # 3. Last resort: shorten what remains of the recent turns' outputs.
    if estimate_tokens(candidate, tools) > budget_tokens:
        candidate = candidate[:2] + [_elided(m, _SHORT_OUTPUT_CHARS) for m in candidate[2:]]
    return candidate, len(old)
