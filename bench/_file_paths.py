"""The three ways a file reaches durable storage that ``bench/files.py`` compares.

- ``DirectStore``: the bytes straight to a ``LocalBlobStore`` (fsynced file and directory) plus one
  ``INSERT`` of a (path, sha256, size) row in its own transaction on a ``state.db.Database``
  (SQLite, WAL, ``synchronous=FULL``, the platform's pragmas). Reading is the row's ``SELECT``
  plus the blob ``get``. No versions, no working tree: the floor.
- ``InProcessSessions``: a ``WorkspaceHostCore`` in this process (no Ray, no HTTP), written
  through ``LocalWorkspaceWriter`` and read through ``WorkspaceReader``: everything the hosted
  session does durably (content blob, one fenced version transaction, working tree).
- ``HttpFiles``: ``PUT``/``GET /api/workspaces/{id}/files/{path}`` against the deployed gateway.

Each keeps one workspace per writer so concurrent writers never queue on one session's lock.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import TracebackType
from typing import Protocol

import httpx
from sqlalchemy import text

from actors.workspace.api import Author
from actors.workspace.catalog import WorkspaceCatalog
from actors.workspace.host import WorkspaceHostCore
from actors.workspace.local import LocalWorkspaceWriter
from actors.workspace.reader import WorkspaceReader
from actors.workspace.settings import WorkspaceSettings
from state.blobs.local import LocalBlobStore
from state.db import Database
from state.migrations import upgrade
from state.models import User, new_id

__all__ = ["DirectStore", "FilePath", "HttpFiles", "InProcessSessions"]

AUTHOR = Author(user_id=None, kind="system", request_id="bench")


class FilePath(Protocol):
    name: str

    async def write(self, worker: int, path: str, data: bytes) -> None: ...

    async def read(self, worker: int, path: str) -> bytes: ...


class DirectStore:
    name = "direct"

    def __init__(self, root: Path) -> None:
        self._blobs = LocalBlobStore(root / "blobs")
        self._db = Database(f"sqlite+aiosqlite:///{root / 'direct.db'}")

    async def __aenter__(self) -> DirectStore:
        async with self._db.session() as session, session.begin():
            await session.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS bench_files ("
                    "path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL)"
                )
            )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._db.close()

    async def write(self, worker: int, path: str, data: bytes) -> None:
        ref = await self._blobs.put(data)
        async with self._db.session() as session, session.begin():
            await session.execute(
                text("INSERT INTO bench_files (path, sha256, size) VALUES (:path, :sha, :size)"),
                {"path": path, "sha": ref.sha256, "size": ref.size},
            )

    async def read(self, worker: int, path: str) -> bytes:
        async with self._db.session() as session:
            digest = await session.scalar(
                text("SELECT sha256 FROM bench_files WHERE path = :path"), {"path": path}
            )
        return await self._blobs.get(str(digest))


class InProcessSessions:
    name = "in-process session"

    def __init__(self, root: Path, *, workspaces: int) -> None:
        url = f"sqlite+aiosqlite:///{root / 'vibecode.db'}"
        upgrade(url)
        self._db = Database(url)
        self._blobs = LocalBlobStore(root / "blobs")
        settings = WorkspaceSettings(trees_dir=root / "trees")
        self._host = WorkspaceHostCore(
            "bench-host", db=self._db, blobs=self._blobs, settings=settings
        )
        self._writer = LocalWorkspaceWriter(self._host)
        self._reader = WorkspaceReader(self._db, self._blobs)
        self._count = workspaces
        self._workspaces: list[str] = []

    async def __aenter__(self) -> InProcessSessions:
        user_id = new_id()
        async with self._db.session() as session, session.begin():
            session.add(User(id=user_id, email=f"{user_id}@example.com", password_hash=None))
        catalog = WorkspaceCatalog(self._db)
        for k in range(self._count):
            record = await catalog.create(user_id, name=f"bench-{k}", template="blank")
            self._workspaces.append(record.id)
        await self._host.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._host.aclose()
        finally:
            await self._db.close()

    async def write(self, worker: int, path: str, data: bytes) -> None:
        await self._writer.write_file(
            self._workspaces[worker], path, data, if_match=None, author=AUTHOR
        )

    async def read(self, worker: int, path: str) -> bytes:
        _, data = await self._reader.read_file(self._workspaces[worker], path)
        return data


class HttpFiles:
    name = "HTTP full path"

    def __init__(self, base_url: str, *, workspaces: int, connections: int) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._http = httpx.AsyncClient(base_url=base_url, timeout=60.0, limits=limits)
        self._count = workspaces
        self._workspaces: list[str] = []

    async def __aenter__(self) -> HttpFiles:
        creds = {"email": "files-bench@example.com", "password": "correct horse battery staple"}
        (await self._http.post("/api/auth/register", json=creds)).raise_for_status()
        login = await self._http.post("/api/auth/login", json=creds)
        login.raise_for_status()
        self._http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        for k in range(self._count):
            created = await self._http.post(
                "/api/workspaces", json={"name": f"bench-{k}", "template": "blank"}
            )
            created.raise_for_status()
            self._workspaces.append(created.json()["id"])
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._http.aclose()

    async def write(
        self, worker: int, path: str, data: bytes, *, expect_changed: bool = True
    ) -> None:
        response = await self._http.put(
            f"/api/workspaces/{self._workspaces[worker]}/files/{path}", content=data
        )
        response.raise_for_status()
        answer = response.json()
        if answer["sha256"] != hashlib.sha256(data).hexdigest():
            raise RuntimeError(f"PUT {path}: the gateway acknowledged other bytes")
        if answer["changed"] != expect_changed:
            raise RuntimeError(f"PUT {path}: changed is {answer['changed']}, not {expect_changed}")

    async def read(self, worker: int, path: str) -> bytes:
        response = await self._http.get(f"/api/workspaces/{self._workspaces[worker]}/files/{path}")
        response.raise_for_status()
        return response.content
