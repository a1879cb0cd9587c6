"""The port the gateway's realtime transports use to reach a workspace's live documents."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from actors.workspace.live import CollabReply

__all__ = ["LiveCollab"]


@runtime_checkable
class LiveCollab(Protocol):
    """Implemented by ``LocalWorkspaceWriter`` and ``RayWorkspaceWriter``: calls go to the
    session that owns the workspace, in order per client connection."""

    async def collab_open(self, workspace_id: str, path: str) -> bytes:
        """The owner's sync step 1 for ``path`` (loads the document)."""
        ...

    async def collab_receive(
        self, workspace_id: str, path: str, message: bytes, *, user_id: str, can_write: bool
    ) -> CollabReply:
        """Apply one y-protocols message; updates are durable before this returns."""
        ...
