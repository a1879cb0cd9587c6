"""The WorkspaceHost actor class plus one method the bench needs: open a session, nothing else.

The platform opens a session as part of the first call for a workspace (a write); to time the
open alone, ``open_session`` runs exactly the host's own ``session()`` and reports how long that
took inside the actor. Everything else is ``WorkspaceHostShell`` unchanged.
"""

from __future__ import annotations

import time

from actors.workspace.actor import WorkspaceHostShell

__all__ = ["OpenableHost"]


class OpenableHost(WorkspaceHostShell):
    async def open_session(self, workspace_id: str) -> float:
        """Open (or find open) ``workspace_id``'s session; return the seconds it took in here."""
        host = await self._host()
        started = time.perf_counter()
        await host.session(workspace_id)
        return time.perf_counter() - started
