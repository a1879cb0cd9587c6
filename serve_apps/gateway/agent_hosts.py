"""How the agent's Ray hosts reach a model: picklable ``LLMClient`` factories, and the
``AgentClient`` factory the Serve shell injects (runs hosted in ``AgentHost`` actors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors.agent.actor import AgentHostConfig, RayAgentClient
from actors.agent.settings import AgentSettings
from actors.agent.store import RunStore
from actors.workspace.actor import HostConfig
from serve_apps.llm_router.ports import LLMClient
from serve_apps.llm_router.settings import LLMSettings
from state.db import Database

__all__ = ["in_process_llm", "ray_agent_client", "serve_llm"]


def serve_llm(handle: Any, _db: Database) -> LLMClient:
    """The router deployment through its (picklable) Serve handle."""
    from serve_apps.llm_router.client import ServeLLMClient

    return ServeLLMClient(handle)


def in_process_llm(settings: LLMSettings, db: Database) -> LLMClient:
    """A router inside the host process itself (tests; clusters without the Serve app)."""
    from serve_apps.llm_router.router import open_llm_router

    return open_llm_router(settings, db=db)


def ray_agent_client(
    *,
    db: Database,
    workspace: HostConfig,
    agent: AgentSettings,
    llm_factory: Callable[[Database], LLMClient],
    namespace: str,
    setup_process: Callable[[], None] | None = None,
) -> RayAgentClient:
    config = AgentHostConfig(workspace=workspace, agent=agent, llm_factory=llm_factory)
    return RayAgentClient(
        config, store=RunStore(db), namespace=namespace, setup_process=setup_process
    )
