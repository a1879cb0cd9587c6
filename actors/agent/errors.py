"""Errors of agent runs. Domain data only; the gateway maps them to HTTP once."""

from __future__ import annotations

from typing import Any

__all__ = ["AgentError", "AgentUnavailable", "RunNotFound"]


class AgentError(Exception):
    """Root of agent errors. ``detail`` is safe to show to the caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.detail,))


class RunNotFound(AgentError):
    """No such run, or the caller may not know it exists."""


class AgentUnavailable(AgentError):
    """No agent host could take or answer the request right now; retry shortly."""
