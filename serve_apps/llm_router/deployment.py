"""``LLMRouterDeployment``: the Ray Serve shell over ``LLMRouter``.

No network at import or startup: the model file is read when the replica starts, litellm is
imported in a background thread (so the first call does not wait for it) and providers are
contacted only by calls.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable

from ray import serve
from ray.serve import Deployment

from serve_apps.llm_router.router import LLMRouter, open_llm_router
from serve_apps.llm_router.settings import LLMSettings
from serve_apps.llm_router.types import ChatChunk, ChatRequest, ChatResponse, ModelCard
from state.db import Database
from state.settings import DatabaseSettings

__all__ = ["LLMRouterDeployment", "LLMRouterReplica"]


def _preload_litellm(settings: LLMSettings) -> None:
    from serve_apps.llm_router.litellm_router import import_litellm

    import_litellm(settings)


class LLMRouterReplica:
    """One router replica: its own database pool for usage, budgets and provider keys."""

    def __init__(
        self,
        settings: LLMSettings,
        db: DatabaseSettings,
        setup_process: Callable[[], None] | None = None,
    ) -> None:
        if setup_process is not None:
            setup_process()
        self._db = Database.from_settings(db)
        self._router: LLMRouter = open_llm_router(settings, db=self._db)
        if settings.config_path is not None:
            threading.Thread(
                target=_preload_litellm, args=(settings,), name="litellm-import", daemon=True
            ).start()

    async def complete(self, request: ChatRequest) -> ChatResponse:
        return await self._router.complete(request)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        async for chunk in self._router.stream(request):
            yield chunk

    async def models(self) -> list[ModelCard]:
        return await self._router.models()


LLMRouterDeployment: Deployment = serve.deployment(
    name="llm_router", ray_actor_options={"num_cpus": 0}
)(LLMRouterReplica)
