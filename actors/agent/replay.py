"""``RunState``: what a run's event log says so far, folded one event at a time.

The loop folds every event it appends, and on (re)start every event already in the log, into
the same state, so a resumed run continues exactly where its log ends: the conversation to send
the model, the tool calls still pending, which calls have an action or an observation, the
failures per action (loop detection), usage, steps and the files and commands of the result.

``Progress`` is the part the run's row shows while it runs; it can be previewed for events that
are about to be appended, so the row is updated in the same transaction as those events.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from actors.agent.api import RunEvent, RunStatus, RunUsage

__all__ = ["Outcome", "Progress", "RunState", "loop_key"]

_ENDED: tuple[RunStatus, ...] = ("succeeded", "failed", "stopped", "cancelled")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended."""

    status: RunStatus
    message: str
    reason: str | None = None
    error: str | None = None


@dataclass(slots=True)
class Progress:
    """Steps, usage, changed files and commands run: what the run's row reports."""

    steps: int = 0
    usage: RunUsage = field(default_factory=RunUsage)
    files: dict[str, None] = field(default_factory=dict)  # an ordered set
    executions: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, payload: dict[str, Any]) -> None:
        """Count one event (an observation is counted once: the caller skips repeats)."""
        match kind:
            case "message" if payload.get("role") == "assistant":
                self.steps += 1
            case "usage":
                usage = self.usage
                self.usage = RunUsage(
                    prompt_tokens=usage.prompt_tokens + int(payload["prompt_tokens"]),
                    completion_tokens=usage.completion_tokens + int(payload["completion_tokens"]),
                    cost_usd=usage.cost_usd + float(payload.get("cost_usd") or 0.0),
                    model_calls=usage.model_calls + 1,
                )
            case "observation":
                data = payload.get("data") or {}
                for path in data.get("files_changed") or ():
                    self.files[str(path)] = None
                if payload.get("tool") == "run_command" and "exit_code" in data:
                    self.executions.append(
                        {k: data.get(k) for k in ("command", "exit_code", "stdout", "stderr")}
                    )
            case _:
                pass

    def after(self, events: Iterable[tuple[str, dict[str, Any]]]) -> Progress:
        """A copy with ``events`` counted too (this one is unchanged)."""
        preview = Progress(self.steps, self.usage, dict(self.files), list(self.executions))
        for kind, payload in events:
            preview.add(kind, payload)
        return preview

    def result(self, outcome: Outcome | None = None) -> dict[str, Any]:
        """The run row's ``result`` column."""
        result: dict[str, Any] = {
            "usage": self.usage.as_dict(),
            "files_changed": list(self.files),
            "executions": list(self.executions),
        }
        if outcome is not None:
            result.update(message=outcome.message, stop_reason=outcome.reason)
        return result


class RunState:
    """Everything the loop knows about its run, rebuilt from the log by ``apply``."""

    def __init__(self, context_token_budget: int) -> None:
        self.seq = 0
        self.history: list[dict[str, Any]] = []
        self.progress = Progress()
        self.pending: list[dict[str, str]] = []  # tool calls of the last reply not yet observed
        self.actions: dict[str, str] = {}  # call id -> loop key, for calls with an action
        self.observed: set[str] = set()
        self.failures: Counter[str] = Counter()
        self.budget_tokens = context_token_budget
        self.ended: Outcome | None = None
        self.summary: str | None = None

    def apply(self, event: RunEvent) -> None:
        """Fold one event into the state (events of the log and new ones alike)."""
        self.seq = event.seq
        payload = event.payload
        match event.kind:
            case "message" if payload.get("role") == "user":
                self.history.append({"role": "user", "content": payload.get("content")})
            case "message":
                self.progress.add("message", payload)
                self._assistant(payload)
            case "action":
                call_id = str(payload.get("tool_call_id"))
                self.actions[call_id] = loop_key(
                    str(payload.get("tool")), str(payload.get("arguments"))
                )
            case "observation":
                self._observation(payload)
            case "usage":
                self.progress.add("usage", payload)
            case "context":
                self.budget_tokens = min(self.budget_tokens, int(payload["budget_tokens"]))
            case "status" if payload.get("status") in _ENDED:
                self.ended = Outcome(
                    payload["status"], str(payload.get("message") or ""), payload.get("reason")
                )
            case _:
                pass

    def _assistant(self, payload: dict[str, Any]) -> None:
        calls = list(payload.get("tool_calls") or ())
        self.pending = [dict(c) for c in calls]
        entry: dict[str, Any] = {"role": "assistant", "content": payload.get("content")}
        if calls:
            entry["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in calls
            ]
        self.history.append(entry)

    def _observation(self, payload: dict[str, Any]) -> None:
        call_id = str(payload.get("tool_call_id"))
        if call_id in self.observed:
            return
        self.observed.add(call_id)
        self.progress.add("observation", payload)
        self.history.append(
            {"role": "tool", "tool_call_id": call_id, "content": str(payload.get("output"))}
        )
        data = payload.get("data") or {}
        if payload.get("tool") == "finish" and payload.get("ok"):
            self.summary = str(data.get("summary") or "Done.")
        key = self.actions.get(call_id)
        if key is not None and not payload.get("ok") and not data.get("interrupted"):
            self.failures[key] += 1
        self.pending = [c for c in self.pending if c["id"] != call_id]


def loop_key(name: str, arguments: str) -> str:
    """The identity of an action for loop detection: the tool and its canonical arguments."""
    try:
        canonical = json.dumps(json.loads(arguments or "{}"), sort_keys=True)
    except json.JSONDecodeError:
        canonical = arguments
    return f"{name}:{canonical}"
