"""Version history kept in the database (revision 0005), and workspaces written before it.

Before revision 0005 every version also stored its whole file set as a "manifest" blob. A
workspace written that way must keep working after the upgrade: every old version lists,
diffs, archives and restores exactly as before, its session opens (and repairs a working tree
whose sidecar has the old format), new versions build on it, and purging it still deletes
the old manifest blobs. New versions store one blob per changed content and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from actors.workspace import (
    Author,
    Entry,
    Manifest,
    WorkspaceHostCore,
    WorkspaceReader,
    WorkspaceSettings,
    purge_deleted_workspaces,
    read_zip,
)
from actors.workspace.catalog import WorkspaceCatalog
from actors.workspace.history import load_manifest
from state.blobs.local import LocalBlobStore
from state.blobs.protocol import digest_of
from state.db import Database
from state.migrations import upgrade
from state.models import new_id, utcnow
from tests.harness.postgres import PostgresServer
from tests.harness.run import next_name

LIMITS = {"max_files": 10, "max_total_bytes": 10**6, "max_file_bytes": 10**6}
SCRIPT = b"#!/bin/sh\necho hi\n"
# The three file sets of the legacy workspace, as path -> (bytes, mode).
LEGACY: list[dict[str, tuple[bytes, int]]] = [
    {"a.txt": (b"one\n", 0o644), "run.sh": (SCRIPT, 0o755)},
    {"a.txt": (b"two\n", 0o644), "dir/b.txt": (b"bee\n", 0o644)},
    {"a.txt": (b"one\n", 0o644), "run.sh": (SCRIPT, 0o755)},  # Version 3 restored version 1.
]


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def legacy_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database migrated only to revision 0004 (before this change)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'legacy.db'}"
        upgrade(url, "0004")
        yield url
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database(next_name())
    try:
        url = server.url_for(name)
        upgrade(url, "0004")
        yield url
    finally:
        server.drop_database(name)


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture
def settings(tmp_path: Path) -> WorkspaceSettings:
    return WorkspaceSettings(trees_dir=tmp_path / "trees")


def _manifest(files: dict[str, tuple[bytes, int]]) -> Manifest:
    return Manifest(
        {p: Entry(digest_of(data), len(data), mode) for p, (data, mode) in files.items()}
    )


async def _write_legacy_workspace(url: str, blobs: LocalBlobStore) -> tuple[str, str, set[str]]:
    """Rows and blobs exactly as the code before revision 0005 wrote them (SQL with explicit
    columns, so later schema changes cannot leak in). Returns user, workspace, manifest blobs."""
    db = Database(url)
    user_id, workspace_id, now = new_id(), new_id(), utcnow()
    manifests: set[str] = set()
    try:
        async with db.session() as session, session.begin():
            run = session.execute
            await run(
                text(
                    "INSERT INTO users (id, email, name, is_admin, created_at, updated_at, "
                    "token_epoch) VALUES (:id, :email, 'Old', false, :now, :now, 0)"
                ),
                {"id": user_id, "email": f"{user_id}@example.com", "now": now},
            )
            await run(
                text(
                    "INSERT INTO workspaces (id, name, template, owner_id, created_at, "
                    "updated_at, head_version, total_bytes, lease_epoch) VALUES "
                    "(:id, 'old', 'blank', :owner, :now, :now, 3, :bytes, 4)"
                ),
                {"id": workspace_id, "owner": user_id, "now": now,
                 "bytes": _manifest(LEGACY[2]).total_bytes},
            )  # fmt: skip
            await run(
                text(
                    "INSERT INTO memberships (id, workspace_id, user_id, role, created_at) "
                    "VALUES (:id, :ws, :user, 'owner', :now)"
                ),
                {"id": new_id(), "ws": workspace_id, "user": user_id, "now": now},
            )
            before = Manifest()
            for number, files in enumerate(LEGACY, start=1):
                manifest = _manifest(files)
                for data, _mode in files.values():
                    await blobs.put(data)
                manifests.add((await blobs.put(manifest.encode())).sha256)
                version_id = new_id()
                await run(
                    text(
                        "INSERT INTO versions (id, workspace_id, number, author_kind, message, "
                        "created_at, parent_number, restored_from, manifest_sha256, file_count, "
                        "total_bytes) VALUES (:id, :ws, :n, 'user', :message, :now, :parent, "
                        ":restored, :manifest, :count, :bytes)"
                    ),
                    {"id": version_id, "ws": workspace_id, "n": number, "message": f"v{number}",
                     "now": now, "parent": number - 1 or None,
                     "restored": 1 if number == 3 else None,
                     "manifest": digest_of(manifest.encode()), "count": len(manifest),
                     "bytes": manifest.total_bytes},
                )  # fmt: skip
                for path in sorted(before.keys() | manifest.keys()):
                    old, new = before.get(path), manifest.get(path)
                    if old == new:
                        continue
                    kind = "deleted" if new is None else "added" if old is None else "modified"
                    await run(
                        text(
                            "INSERT INTO version_files (id, version_id, path, change, sha256, "
                            "before_sha256, size, mode) VALUES (:id, :v, :path, :kind, :sha, "
                            ":before, :size, :mode)"
                        ),
                        {"id": new_id(), "v": version_id, "path": path, "kind": kind,
                         "sha": new.sha256 if new else None,
                         "before": old.sha256 if old else None,
                         "size": new.size if new else None, "mode": new.mode if new else None},
                    )  # fmt: skip
                before = manifest
            for path, entry in before.items():
                await run(
                    text(
                        "INSERT INTO file_entries (id, workspace_id, path, sha256, size, mode, "
                        "modified_at) VALUES (:id, :ws, :path, :sha, :size, :mode, :now)"
                    ),
                    {"id": new_id(), "ws": workspace_id, "path": path, "sha": entry.sha256,
                     "size": entry.size, "mode": entry.mode, "now": now},
                )  # fmt: skip
    finally:
        await db.close()
    return user_id, workspace_id, manifests


async def test_a_workspace_written_before_the_upgrade_keeps_its_whole_history(
    legacy_url: str, blobs: LocalBlobStore, settings: WorkspaceSettings
) -> None:
    user_id, ws, manifests = await _write_legacy_workspace(legacy_url, blobs)
    # The tree of the old session, with a sidecar of the old format and a stray change in it.
    tree = Path(settings.trees_dir or "") / ws
    tree.mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"stray edit")
    (tree.parent / f"{ws}.head").write_text(
        json.dumps({"version": 3, "manifest_sha256": digest_of(_manifest(LEGACY[2]).encode())})
    )
    upgrade(legacy_url)

    db = Database(legacy_url)
    try:
        reader = WorkspaceReader(db, blobs)
        for number, files in enumerate(LEGACY, start=1):
            assert await reader.manifest(ws, number) == _manifest(files)
            archived = read_zip(await reader.archive(ws, version=number), **LIMITS)
            assert archived == {path: data for path, (data, _) in files.items()}
        diff = {d.change.path: d.change.kind for d in await reader.diff(ws, 1, 2)}
        assert diff == {"a.txt": "modified", "dir/b.txt": "added", "run.sh": "deleted"}
        assert (await reader.get_version(ws, 3)).restored_from == 1

        me = Author(user_id=user_id)
        async with WorkspaceHostCore("new", db=db, blobs=blobs, settings=settings) as host:
            session = await host.session(ws)
            assert session.manifest == _manifest(LEGACY[2])
            assert (tree / "a.txt").read_bytes() == b"one\n"  # The old sidecar was not trusted.
            assert (tree / "run.sh").read_bytes() == SCRIPT
            added = await host.write_file(ws, "new.txt", b"new\n", if_match=None, author=me)
            assert added.version == 4
            restored = await host.restore(ws, 2, author=me)
        assert restored.number == 5
        assert {c.path: c.kind for c in restored.changes} == {
            "a.txt": "modified",
            "dir/b.txt": "added",
            "new.txt": "deleted",
            "run.sh": "deleted",
        }
        assert await reader.manifest(ws, 5) == _manifest(LEGACY[1])
        assert await reader.manifest(ws, 4) == _manifest(
            {**LEGACY[2], "new.txt": (b"new\n", 0o644)}
        )

        async with db.session() as session, session.begin():
            await session.execute(
                text("UPDATE workspaces SET deleted_at = :now WHERE id = :id"),
                {"now": utcnow(), "id": ws},
            )
        assert await purge_deleted_workspaces(db, blobs, older_than=utcnow()) == 1
    finally:
        await db.close()
    left = {digest async for digest in blobs.iter_digests()}
    assert left == set()  # Contents, the new version's and the old manifests alike.
    assert manifests  # (There were manifest blobs to delete.)


async def test_a_write_stores_its_content_and_no_other_blob(
    database: Database, blobs: LocalBlobStore, settings: WorkspaceSettings
) -> None:
    async with database.session() as session, session.begin():
        user_id = new_id()
        await session.execute(
            text(
                "INSERT INTO users (id, email, name, is_admin, created_at, updated_at, "
                "token_epoch) VALUES (:id, :email, 'New', false, :now, :now, 0)"
            ),
            {"id": user_id, "email": f"{user_id}@example.com", "now": utcnow()},
        )
    ws = (await WorkspaceCatalog(database).create(user_id, name="w", template="blank")).id
    me = Author(user_id=user_id)
    async with WorkspaceHostCore("h", db=database, blobs=blobs, settings=settings) as host:
        for i in range(3):
            await host.write_file(
                ws, f"f{i}.txt", f"content {i}".encode(), if_match=None, author=me
            )
        await host.delete_file(ws, "f0.txt", if_match=None, author=me)
        await host.move_file(ws, "f1.txt", "moved/f1.txt", author=me)
    stored = {digest async for digest in blobs.iter_digests()}
    assert stored == {digest_of(f"content {i}".encode()) for i in range(3)}
    reader = WorkspaceReader(database, blobs)
    assert await reader.manifest(ws, 3) == _manifest(
        {f"f{i}.txt": (f"content {i}".encode(), 0o644) for i in range(3)}
    )
    head = await reader.manifest(ws)  # From the file index ...
    assert sorted(head) == ["f2.txt", "moved/f1.txt"]
    assert await load_manifest(database, ws, 5) == head  # ... equal to the replayed changes.
