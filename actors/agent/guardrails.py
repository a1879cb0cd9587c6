"""``Guardrails``: the limits a run stops at (steps, tokens, cost, wall time), from the limits it
was created with (``run_limits``) over the agent's settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.agent.replay import Outcome, Progress
from actors.agent.settings import AgentSettings

__all__ = ["Guardrails"]


@dataclass(frozen=True, slots=True)
class Guardrails:
    max_steps: int
    max_tokens: int
    max_cost_usd: float | None
    max_wall_time_s: float

    @classmethod
    def of(cls, limits: dict[str, Any], settings: AgentSettings) -> Guardrails:
        cost = limits.get("max_cost_usd")
        return cls(
            max_steps=int(limits.get("max_steps") or settings.max_steps),
            max_tokens=int(limits.get("max_tokens") or settings.max_tokens),
            max_cost_usd=float(cost) if cost is not None else None,
            max_wall_time_s=float(limits.get("max_wall_time_s") or settings.max_wall_time_s),
        )

    def check(self, progress: Progress) -> Outcome | None:
        """The outcome of a run that must stop before its next model call, or None."""
        usage = progress.usage
        if progress.steps >= self.max_steps:
            return Outcome(
                "stopped",
                f"Stopped: the run reached its limit of {self.max_steps} steps.",
                reason="max_steps",
            )
        if usage.total_tokens >= self.max_tokens:
            return Outcome(
                "stopped",
                f"Stopped: the run used {usage.total_tokens} tokens, its limit is "
                f"{self.max_tokens}.",
                reason="max_tokens",
            )
        if self.max_cost_usd is not None and usage.cost_usd >= self.max_cost_usd:
            return Outcome(
                "stopped",
                f"Stopped: budget exceeded: {usage.cost_usd:.4f} USD spent of the run's "
                f"{self.max_cost_usd:.4f} USD budget.",
                reason="budget",
            )
        return None

    def wall_time(self) -> Outcome:
        return Outcome(
            "stopped",
            f"Stopped: the run reached its wall-time limit of {self.max_wall_time_s:g} s.",
            reason="wall_time",
        )
