"""Settings owned by the coding agent (``VIBECODE_AGENT__*``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["AgentSettings"]


class AgentSettings(BaseModel):
    """Guardrails of a run, context management, hosting and the one-shot route's bound."""

    # Guardrails: a run stops (status "stopped", with the reason) when one is reached.
    max_steps: int = Field(40, ge=1, description="model calls per run")
    max_wall_time_s: float = Field(1800.0, gt=0, description="from the run's start")
    max_tokens: int = Field(2_000_000, ge=1, description="prompt + completion tokens per run")
    # Per-run spend; a request may lower it (never raise it). None: unlimited.
    default_run_budget_usd: float | None = Field(1.0, ge=0)
    # Context management: the history is condensed once its estimate passes this many tokens.
    context_token_budget: int = Field(24_000, ge=1000)
    # Turns (an assistant message and its tool results) kept whole when condensing.
    keep_recent_turns: int = Field(4, ge=1)
    # The same failing action this many times stops the run (loop detection).
    loop_threshold: int = Field(3, ge=2)
    # Tool limits: what an observation may hold, how long a command may run.
    tool_output_chars: int = Field(8_000, ge=200)
    command_timeout_s: float = Field(120.0, gt=0)
    search_max_results: int = Field(100, ge=1)
    search_max_file_bytes: int = Field(1_000_000, ge=1)
    list_max_files: int = Field(500, ge=1)
    # Hosting: AgentHost actors (``agent-host:<n>``) and how many runs one host holds.
    hosts: int = Field(2, ge=1)
    max_runs_per_host: int = Field(200, ge=1)
    # ``POST /api/ai/execute`` waits at most this long for its run to end.
    execute_timeout_s: float = Field(600.0, gt=0)
    # How often a queued run checks whether its workspace is free, and streams poll the log.
    poll_interval_s: float = Field(0.1, gt=0)
    model_timeout_s: float | None = Field(None, gt=0, description="per model call (router's)")
