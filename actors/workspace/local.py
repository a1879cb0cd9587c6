"""LocalWorkspaceWriter: the WorkspaceWriter port served in-process by a WorkspaceHostCore.

Used by tests and by the gateway when it runs without Ray (bare uvicorn, TestClient).
"""

from __future__ import annotations

from actors.workspace.api import Author, SessionInfo, VersionInfo, WriteResult
from actors.workspace.host import WorkspaceHostCore

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
    ) -> VersionInfo:
        return await self.host.apply_batch(
            workspace_id, files, author=author, message=message, replace_all=replace_all
        )

    async def restore(self, workspace_id: str, version: int, *, author: Author) -> VersionInfo:
        return await self.host.restore(workspace_id, version, author=author)

    async def close(self, workspace_id: str) -> None:
        await self.host.close(workspace_id)

    async def sessions(self) -> list[SessionInfo]:
        return await self.host.sessions()
