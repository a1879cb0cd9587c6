"""The contract of agent runs: statuses, value types and the ``AgentClient`` port.

Starting and cancelling a run go to the run's host through an ``AgentClient``: in-process
(``LocalAgentClient``: tests and bare uvicorn) or through Ray (``RayAgentClient``: the
``AgentHost`` actors). Reads (a run, its event log) need no host: they go to the database
through ``RunStore``. Everything here pickles: it crosses actor boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "AgentClient",
    "EventKind",
    "RunEvent",
    "RunInfo",
    "RunRequest",
    "RunStatus",
    "RunUsage",
    "StopReason",
]

RunStatus = Literal[
    "queued", "running", "cancelling", "succeeded", "failed", "stopped", "cancelled"
]
ACTIVE_STATUSES: tuple[RunStatus, ...] = ("queued", "running", "cancelling")
TERMINAL_STATUSES: tuple[RunStatus, ...] = ("succeeded", "failed", "stopped", "cancelled")

# Why a run stopped before finishing: a guardrail, loop detection, or an error.
StopReason = Literal[
    "max_steps", "max_tokens", "budget", "wall_time", "loop_detected", "context_window", "error"
]

# message: a user or assistant message (with its tool calls); action: a tool call about to run
# (written before it runs); observation: its result; usage: one model call's tokens and cost;
# context: the history was condensed; status: the run's status changed; error: something failed.
EventKind = Literal["message", "action", "observation", "usage", "context", "status", "error"]


@dataclass(frozen=True, slots=True)
class RunRequest:
    """What starts a run. ``max_cost_usd`` may lower the configured budget, never raise it."""

    workspace_id: str
    user_id: str | None
    prompt: str
    model: str | None = None
    max_steps: int | None = None
    max_cost_usd: float | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class RunUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    model_calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "model_calls": self.model_calls,
        }

    @classmethod
    def of(cls, data: Any) -> RunUsage:
        if not isinstance(data, dict):
            return cls()
        return cls(
            prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            cost_usd=float(data.get("cost_usd") or 0.0),
            model_calls=int(data.get("model_calls") or 0),
        )


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as stored. ``message`` is the final answer (or why it stopped) once it ended."""

    run_id: str
    workspace_id: str
    user_id: str | None
    prompt: str
    model: str | None
    status: RunStatus
    host: str | None
    steps: int
    usage: RunUsage
    limits: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    message: str | None = None
    stop_reason: str | None = None
    files_changed: tuple[str, ...] = ()
    executions: tuple[dict[str, Any], ...] = ()

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One entry of a run's append-only log; ``seq`` counts from 1 without gaps."""

    run_id: str
    seq: int
    kind: str
    payload: dict[str, Any]
    created_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "kind": self.kind,
            "payload": self.payload,
            "created_at": self.created_at.isoformat(),
        }


class AgentClient(Protocol):
    """Starts and cancels runs on their hosts."""

    async def start(self, request: RunRequest) -> RunInfo:
        """Record the run (status ``queued``), place it on a host and start it; return at once.

        A run waits in ``queued`` while an earlier run of the same workspace is active."""
        ...

    async def cancel(self, run_id: str) -> RunInfo:
        """Ask the run to stop: it ends ``cancelled`` at its next step boundary, and a command
        it is running is stopped. Cancelling an ended run changes nothing."""
        ...

    async def close(self) -> None: ...
