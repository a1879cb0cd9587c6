"""The agent as the platform runs it, in this process: the parts ``bench/agent.py`` measures.

An ``AgentHostCore`` with the platform's default ``AgentSettings`` over a fresh SQLite database
and local blob store in a temp dir, writing through a ``LocalWorkspaceWriter`` (an in-process
``WorkspaceHostCore``, what a ``WorkspaceHost`` actor runs, minus Ray), and calling the model
through the real ``LLMRouter`` (budgets checked, users' provider keys looked up, as
``open_llm_router`` builds it; the run stores each call's usage record with its log) over
``LiteLLMBackend`` against the fake model server.

The backend is wrapped in ``TimedBackend``, which records when each model call started and
ended and what it sent: the model-call time that is subtracted from a step, and the requests
the direct-litellm baseline replays.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import yaml

__all__ = ["Platform", "TimedBackend", "TimedCall", "agent_platform"]

# Prices so that cost is computed for every call, as for a real provider's model.
PRICED = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}
MODEL = "fast"


@dataclass(frozen=True)
class TimedCall:
    started: float  # perf_counter seconds
    ended: float
    messages: list[dict[str, Any]]

    @property
    def duration_s(self) -> float:
        return self.ended - self.started


@dataclass
class TimedBackend:
    """A ``ChatBackend`` that times the calls of ``inner`` per run id."""

    inner: Any
    calls: dict[str, list[TimedCall]] = field(default_factory=lambda: defaultdict(list))

    def model_cards(self) -> Any:
        return self.inner.model_cards()

    def resolve(self, name: str | None) -> str | None:
        resolved: str | None = self.inner.resolve(name)
        return resolved

    def provider_of(self, model: str) -> str:
        provider: str = self.inner.provider_of(model)
        return provider

    async def complete(self, request: Any, *, model: str, api_key: str | None) -> Any:
        from time import perf_counter

        started = perf_counter()
        try:
            return await self.inner.complete(request, model=model, api_key=api_key)
        finally:
            self.calls[str(request.context.run_id)].append(
                TimedCall(started, perf_counter(), list(request.messages))
            )

    def stream(self, request: Any, *, model: str, api_key: str | None) -> Any:
        return self.inner.stream(request, model=model, api_key=api_key)


@dataclass
class Platform:
    client: Any  # LocalAgentClient
    host: Any  # AgentHostCore
    store: Any  # RunStore
    catalog: Any  # WorkspaceCatalog
    backend: TimedBackend
    user_id: str

    async def new_workspace(self, name: str) -> str:
        record = await self.catalog.create(self.user_id, name=name, template="blank")
        return str(record.id)


def _quiet_logging(settings: Any) -> None:
    """Log as a host does (same renderer and level), but into /dev/null, not our console."""
    from cluster.logging import configure_logging

    configure_logging(settings.log, production=False)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(open(os.devnull, "w")))  # noqa: SIM115


def _model_file(data_dir: Path, model_base_url: str) -> Path:
    """The model configuration (litellm router format): one priced model on the fake server."""
    data_dir.mkdir(parents=True)
    path = data_dir / "models.yaml"
    entry = {"model": f"openai/{MODEL}", "api_base": model_base_url, "api_key": "sk-fake"}
    path.write_text(
        yaml.safe_dump({"model_list": [{"model_name": MODEL, "litellm_params": entry | PRICED}]})
    )
    return path


@asynccontextmanager
async def agent_platform(data_dir: Path, model_base_url: str) -> AsyncIterator[Platform]:
    """Yield the platform's agent on a fresh database under ``data_dir``; close it on exit."""
    from actors.agent import AgentHostCore, LocalAgentClient, RunStore
    from actors.workspace import LocalWorkspaceWriter, WorkspaceHostCore, WorkspaceReader
    from actors.workspace.catalog import WorkspaceCatalog
    from cluster.settings import load_settings
    from serve_apps.llm_router.provider_keys import open_provider_key_store
    from serve_apps.llm_router.router import LLMRouter, open_backend
    from serve_apps.llm_router.usage import UsageRecorder
    from state.blobs import open_blob_store
    from state.db import Database
    from state.migrations import upgrade
    from state.models import User

    settings = load_settings(data_dir=data_dir, llm_config=_model_file(data_dir, model_base_url))
    _quiet_logging(settings)
    if settings.db.url is None:
        raise RuntimeError("the database URL did not resolve")
    upgrade(settings.db.url)
    async with AsyncExitStack() as stack:
        db = Database.from_settings(settings.db)
        stack.push_async_callback(db.close)
        blobs = open_blob_store(settings.blob)
        workspaces = await stack.enter_async_context(
            WorkspaceHostCore("workspace-host:0", db=db, blobs=blobs, settings=settings.workspace)
        )
        inner = open_backend(settings.llm)
        backend = TimedBackend(inner)
        await inner.start()  # import litellm and build its Router before anything is timed
        llm = settings.llm
        keys = open_provider_key_store(db, llm)
        router = LLMRouter(backend, settings=llm, recorder=UsageRecorder(db), keys=keys)
        store = RunStore(db)
        host = await stack.enter_async_context(
            AgentHostCore(
                "agent-host:0",
                store=store,
                llm=router,
                writer=LocalWorkspaceWriter(workspaces),
                reader=WorkspaceReader(db, blobs),
                settings=settings.agent,
            )
        )
        async with db.session() as session, session.begin():
            user = User(email="bench@example.com", name="Bench")
            session.add(user)
        yield Platform(
            client=LocalAgentClient(host),
            host=host,
            store=store,
            catalog=WorkspaceCatalog(db),
            backend=backend,
            user_id=user.id,
        )
