"""LocalWorkspaceWriter: the WorkspaceWriter port served in-process by a WorkspaceHostCore.

Used by tests and by the gateway when it runs without Ray (bare uvicorn, TestClient).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from actors.workspace.api import (
    Author,
    ExecOutcome,
    SessionInfo,
    SyncReport,
    VersionInfo,
    WriteResult,
)
from actors.workspace.host import WorkspaceHostCore
from actors.workspace.live import CollabReply
from sandbox import ExecRequest, OutputChunk, ProcessInfo, ProcessLogs, StartRequest

__all__ = ["LocalWorkspaceWriter"]


class LocalWorkspaceWriter:
    """Delegates every call to ``host``; the caller owns the host's lifecycle."""

    def __init__(self, host: WorkspaceHostCore) -> None:
        self.host = host

    async def write_file(
        self, workspace_id: str, path: str, data: bytes, *, if_match: str | None, author: Author
    ) -> WriteResult:
        return await self.host.write_file(
            workspace_id, path, data, if_match=if_match, author=author
        )

    async def delete_file(
        self, workspace_id: str, path: str, *, if_match: str | None, author: Author
    ) -> VersionInfo:
        return await self.host.delete_file(workspace_id, path, if_match=if_match, author=author)

    async def move_file(
        self, workspace_id: str, source: str, destination: str, *, author: Author
    ) -> VersionInfo:
        return await self.host.move_file(workspace_id, source, destination, author=author)

    async def apply_batch(
        self,
        workspace_id: str,
        files: dict[str, bytes | None],
        *,
        author: Author,
        message: str,
        replace_all: bool = False,
        modes: dict[str, int] | None = None,
    ) -> VersionInfo:
        return await self.host.apply_batch(
            workspace_id,
            files,
            author=author,
            message=message,
            replace_all=replace_all,
            modes=modes,
        )

    async def restore(self, workspace_id: str, version: int, *, author: Author) -> VersionInfo:
        return await self.host.restore(workspace_id, version, author=author)

    async def close(self, workspace_id: str) -> None:
        await self.host.close(workspace_id)

    async def sessions(self) -> list[SessionInfo]:
        return await self.host.sessions()

    async def collab_open(self, workspace_id: str, path: str) -> bytes:
        return await self.host.collab_open(workspace_id, path)

    async def collab_receive(
        self, workspace_id: str, path: str, message: bytes, *, user_id: str, can_write: bool
    ) -> CollabReply:
        return await self.host.collab_receive(
            workspace_id, path, message, user_id=user_id, can_write=can_write
        )

    async def exec(self, workspace_id: str, request: ExecRequest, *, author: Author) -> ExecOutcome:
        return await self.host.exec(workspace_id, request, author=author)

    async def exec_stream(
        self, workspace_id: str, request: ExecRequest, *, author: Author
    ) -> AsyncIterator[OutputChunk | ExecOutcome]:
        async for event in self.host.exec_stream(workspace_id, request, author=author):
            yield event

    async def start_process(
        self,
        workspace_id: str,
        request: StartRequest,
        *,
        author: Author,
        client_token: str | None = None,
    ) -> ProcessInfo:
        return await self.host.start_process(
            workspace_id, request, author=author, client_token=client_token
        )

    async def list_processes(self, workspace_id: str) -> list[ProcessInfo]:
        return await self.host.list_processes(workspace_id)

    async def read_logs(self, workspace_id: str, process_id: str, offset: int = 0) -> ProcessLogs:
        return await self.host.read_logs(workspace_id, process_id, offset)

    async def follow_process(
        self, workspace_id: str, process_id: str, offset: int = 0
    ) -> AsyncIterator[bytes]:
        async for data in self.host.follow_process(workspace_id, process_id, offset):
            yield data

    async def write_stdin(self, workspace_id: str, process_id: str, data: bytes) -> None:
        await self.host.write_stdin(workspace_id, process_id, data)

    async def resize_terminal(
        self, workspace_id: str, process_id: str, *, cols: int, rows: int
    ) -> None:
        await self.host.resize_terminal(workspace_id, process_id, cols=cols, rows=rows)

    async def kill_process(
        self, workspace_id: str, process_id: str, *, author: Author
    ) -> SyncReport:
        return await self.host.kill_process(workspace_id, process_id, author=author)

    async def sync(self, workspace_id: str, *, author: Author) -> SyncReport:
        return await self.host.sync(workspace_id, author=author)
