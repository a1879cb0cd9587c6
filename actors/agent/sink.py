"""``RunEventSink``: where a host publishes each run event once it is durable in the log.

The database log stays the source of truth (clients resume from it with ``after=N``); a sink
only pushes events out sooner, e.g. to a Socket.IO room. Publishing must not fail a run: a sink
swallows and logs its own errors, and should not block (hand off to a queue if it must).
"""

from __future__ import annotations

from typing import Protocol

from actors.agent.api import RunEvent

__all__ = ["NullSink", "RunEventSink"]


class RunEventSink(Protocol):
    async def publish(self, workspace_id: str, event: RunEvent) -> None:
        """Called after ``event`` was appended to the log of a run of ``workspace_id``."""
        ...


class NullSink:
    """Publishes nowhere (the default): clients read the log."""

    async def publish(self, workspace_id: str, event: RunEvent) -> None:
        return None
