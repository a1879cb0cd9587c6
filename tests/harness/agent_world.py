"""An agent world without Ray: a scripted ``LLMClient``, in-process workspace sessions on
SQLite, and an ``AgentHostCore`` driving runs (unit tests of the agent loop)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.agent import (
    TERMINAL_STATUSES,
    AgentHostCore,
    AgentSettings,
    LocalAgentClient,
    RunInfo,
    RunRequest,
    RunStore,
)
from actors.workspace import LocalWorkspaceWriter, WorkspaceHostCore, WorkspaceReader
from actors.workspace.catalog import WorkspaceCatalog
from actors.workspace.settings import WorkspaceSettings
from serve_apps.llm_router.errors import LLMError
from serve_apps.llm_router.ports import LLMClient
from serve_apps.llm_router.types import (
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ModelCard,
    ToolCall,
    Usage,
)
from state.blobs.local import LocalBlobStore
from state.db import Database
from state.migrations import upgrade
from state.models import User

__all__ = ["AgentWorld", "ScriptedLLM", "open_world", "text", "tool"]

_ids = itertools.count(1)
Step = ChatResponse | LLMError | Callable[[ChatRequest], ChatResponse]


def tool(
    name: str, args: dict[str, Any] | str | None = None, *, cost_usd: float = 0.001
) -> ChatResponse:
    raw = args if isinstance(args, str) else json.dumps(args or {})
    call = ToolCall(id=f"call_{next(_ids)}", name=name, arguments=raw)
    return ChatResponse(
        id="r",
        created=0,
        model="fake",
        message=ChatMessage(tool_calls=(call,)),
        finish_reason="tool_calls",
        usage=Usage(prompt_tokens=100, completion_tokens=10, cost_usd=cost_usd),
    )


def text(content: str) -> ChatResponse:
    return ChatResponse(
        id="r",
        created=0,
        model="fake",
        message=ChatMessage(content=content),
        finish_reason="stop",
        usage=Usage(prompt_tokens=100, completion_tokens=10, cost_usd=0.001),
    )


@dataclass
class ScriptedLLM:
    """An ``LLMClient`` that plays ``steps`` in order and records every request."""

    steps: list[Step] = field(default_factory=list)
    requests: list[ChatRequest] = field(default_factory=list)
    delay_s: float = 0.0

    async def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if not self.steps:
            raise AssertionError("the scripted model has no reply left")
        step = self.steps.pop(0)
        if isinstance(step, LLMError):
            raise step
        if isinstance(step, ChatResponse):
            return step
        return step(request)

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        raise NotImplementedError
        yield  # pragma: no cover

    async def models(self) -> list[ModelCard]:
        return [ModelCard(id="fake", owned_by="tests", default=True)]


@dataclass
class AgentWorld:
    db: Database
    llm: ScriptedLLM
    host: AgentHostCore
    client: LocalAgentClient
    store: RunStore
    reader: WorkspaceReader
    writer: LocalWorkspaceWriter
    user_id: str
    workspace_id: str
    catalog: WorkspaceCatalog

    async def start(self, prompt: str = "do it", **options: Any) -> RunInfo:
        request = RunRequest(
            workspace_id=options.pop("workspace_id", self.workspace_id),
            user_id=self.user_id,
            prompt=prompt,
            **options,
        )
        return await self.client.start(request)

    async def until(
        self, run_id: str, done: Callable[[RunInfo], bool], timeout_s: float = 10.0
    ) -> RunInfo:
        """The run once ``done(run)`` holds (polling the database)."""
        async with asyncio.timeout(timeout_s):
            while True:
                run = await self.store.get(run_id)
                if done(run):
                    return run
                await asyncio.sleep(0.01)

    async def finished(self, run_id: str, timeout_s: float = 10.0) -> RunInfo:
        await self.until(run_id, lambda run: run.status in TERMINAL_STATUSES, timeout_s)
        await self.host.wait(run_id)
        return await self.store.get(run_id)

    async def events(self, run_id: str) -> list[tuple[str, dict[str, Any]]]:
        return [(e.kind, e.payload) for e in await self.store.all_events(run_id)]


async def open_world(
    stack: AsyncExitStack,
    tmp_path: Path,
    llm: ScriptedLLM,
    settings: AgentSettings | None = None,
    *,
    model: LLMClient | None = None,
) -> AgentWorld:
    """``model`` replaces the scripted ``llm`` as the host's model (e.g. the demo router)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'agent.db'}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    stack.push_async_callback(db.close)
    blobs = LocalBlobStore(tmp_path / "blobs")
    ws_host = await stack.enter_async_context(
        WorkspaceHostCore(
            "ws", db=db, blobs=blobs, settings=WorkspaceSettings(trees_dir=tmp_path / "trees")
        )
    )
    writer = LocalWorkspaceWriter(ws_host)
    reader = WorkspaceReader(db, blobs)
    store = RunStore(db)
    agent_settings = settings or AgentSettings(poll_interval_s=0.01)
    host = await stack.enter_async_context(
        AgentHostCore(
            "agent-local",
            store=store,
            llm=model or llm,
            writer=writer,
            reader=reader,
            settings=agent_settings,
        )
    )
    async with db.session() as session, session.begin():
        user = User(email="ada@example.com", name="Ada")
        session.add(user)
    catalog = WorkspaceCatalog(db)
    record = await catalog.create(user.id, name="agent", template="blank")
    return AgentWorld(
        db=db,
        llm=llm,
        host=host,
        client=LocalAgentClient(host),
        store=store,
        reader=reader,
        writer=writer,
        user_id=user.id,
        workspace_id=record.id,
        catalog=catalog,
    )
