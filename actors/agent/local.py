"""LocalAgentClient: the ``AgentClient`` port served in-process by one ``AgentHostCore``.

Used by tests and by the gateway when it runs without Ray (bare uvicorn, TestClient).
"""

from __future__ import annotations

from actors.agent.api import RunInfo, RunRequest
from actors.agent.host import AgentHostCore, run_limits

__all__ = ["LocalAgentClient"]


class LocalAgentClient:
    """Runs every run on ``host``; the caller owns the host's lifecycle."""

    def __init__(self, host: AgentHostCore) -> None:
        self.host = host

    async def start(self, request: RunRequest) -> RunInfo:
        store = self.host.store
        limits = run_limits(request, self.host.settings)
        run = await store.create(request, limits=limits, host=self.host.name)
        await self.host.start_run(run.run_id)
        return await store.get(run.run_id)

    async def cancel(self, run_id: str) -> RunInfo:
        store = self.host.store
        if await store.request_cancel(run_id):
            await self.host.cancel(run_id)
        return await store.get(run_id)

    async def close(self) -> None:
        return None
