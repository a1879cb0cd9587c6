"""``RunEventSink``: where a host publishes each run event once it is durable in the log.

The database log stays the source of truth (clients resume from it with ``after=N``); a sink
only pushes events out sooner, e.g. to a Socket.IO room. Publishing must not fail a run: a sink
swallows and logs its own errors, and should not block (hand off to a queue if it must).
"""

from __future__ import annotations

from typing import Protocol

import structlog

from actors.agent.api import RunEvent
from actors.workspace.realtime import EventPublisher
from state.errors import StateError

__all__ = ["NullSink", "RealtimeRunSink", "RunEventSink"]

log = structlog.get_logger("agent.sink")


class RunEventSink(Protocol):
    async def publish(self, workspace_id: str, event: RunEvent) -> None:
        """Called after ``event`` was appended to the log of a run of ``workspace_id``."""
        ...


class NullSink:
    """Publishes nowhere (the default): clients read the log."""

    async def publish(self, workspace_id: str, event: RunEvent) -> None:
        return None


class RealtimeRunSink:
    """Publishes every logged event to the workspace's realtime room as ``agent.event``.

    Socket.IO clients in the room see a run as it happens; the log stays the source of truth
    (a client that missed events reads them with ``GET .../events?after=N``).
    """

    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    async def publish(self, workspace_id: str, event: RunEvent) -> None:
        try:
            await self._publisher.publish(workspace_id, "agent.event", event.as_dict())
        except StateError as exc:
            # Pub/sub is best effort: the event is already durable in the log.
            log.warning("agent.event_not_published", run_id=event.run_id, error=str(exc))
