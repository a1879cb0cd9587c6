"""Hosted workspace sessions over a real database (SQLite and PostgreSQL) and a blob folder.

What a user relies on: every acknowledged write is durable and readable byte-exact, versions
are strictly ordered, a fenced-out session can never write, and nothing is lost or orphaned.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from actors.workspace import (
    Author,
    FileNotFoundInWorkspace,
    InvalidPath,
    LeaseLost,
    LocalWorkspaceWriter,
    PreconditionFailed,
    QuotaExceeded,
    VersionNotFound,
    WorkspaceHostCore,
    WorkspaceNotFound,
    WorkspaceReader,
    WorkspaceSettings,
    purge_deleted_workspaces,
    read_zip,
)
from actors.workspace.archive import unpack_zip
from actors.workspace.tree import WorkingTree
from state.blobs.local import LocalBlobStore
from state.blobs.protocol import digest_of
from state.db import Database
from state.models import User, Version, Workspace, utcnow

BINARY = bytes(range(256)) * 17 + b"\x00\xff\xfe"


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture
def settings(tmp_path: Path) -> WorkspaceSettings:
    return WorkspaceSettings(
        trees_dir=tmp_path / "trees",
        max_file_bytes=64 * 1024,
        max_workspace_bytes=256 * 1024,
        max_files=50,
    )


@pytest.fixture
async def user_id(database: Database) -> str:
    async with database.session() as session, session.begin():
        user = User(email="ada@example.com", name="Ada")
        session.add(user)
    return user.id


@pytest.fixture
async def host(
    database: Database, blobs: LocalBlobStore, settings: WorkspaceSettings
) -> AsyncIterator[WorkspaceHostCore]:
    async with WorkspaceHostCore("host-a", db=database, blobs=blobs, settings=settings) as core:
        yield core


@pytest.fixture
def reader(database: Database, blobs: LocalBlobStore) -> WorkspaceReader:
    return WorkspaceReader(database, blobs)


async def new_workspace(database: Database, owner_id: str, name: str = "demo") -> str:
    async with database.session() as session, session.begin():
        workspace = Workspace(name=name, owner_id=owner_id)
        session.add(workspace)
    return workspace.id


@pytest.fixture
async def ws(database: Database, user_id: str) -> str:
    return await new_workspace(database, user_id)


@pytest.fixture
def me(user_id: str) -> Author:
    return Author(user_id=user_id)


def tree_files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink()
    }


async def test_write_many_files_and_read_them_back_byte_exact(
    host: WorkspaceHostCore,
    reader: WorkspaceReader,
    ws: str,
    me: Author,
    settings: WorkspaceSettings,
) -> None:
    files = {f"src/mod_{i}.py": f"value = {i}\n".encode() for i in range(20)}
    files["assets/logo.bin"] = BINARY
    files["é/ünï cödé.txt"] = "ünïcödé\n".encode()
    versions = []
    for path, data in files.items():
        result = await host.write_file(ws, path, data, if_match=None, author=me)
        assert (result.path, result.size, result.sha256) == (path, len(data), digest_of(data))
        versions.append(result.version)
    assert versions == list(range(1, len(files) + 1))

    listed = await reader.list_files(ws)
    assert [info.path for info in listed] == sorted(files)
    for path, data in files.items():
        info, content = await reader.read_file(ws, path)
        assert content == data
        assert info.sha256 == digest_of(data)
    assert tree_files(Path(settings.trees_dir or "") / ws) == files

    history = await reader.list_versions(ws, limit=100)
    assert [v.number for v in history] == list(range(len(files), 0, -1))
    assert all(v.author_id == me.user_id for v in history)


async def test_an_unchanged_write_makes_no_version(
    host: WorkspaceHostCore, reader: WorkspaceReader, ws: str, me: Author
) -> None:
    first = await host.write_file(ws, "a.txt", b"same", if_match=None, author=me)
    again = await host.write_file(ws, "a.txt", b"same", if_match=None, author=me)
    assert first.changed
    assert not again.changed
    assert again.version == first.version == 1
    assert len(await reader.list_versions(ws)) == 1


async def test_if_match(host: WorkspaceHostCore, ws: str, me: Author) -> None:
    first = await host.write_file(ws, "a.txt", b"one", if_match=None, author=me)
    second = await host.write_file(ws, "a.txt", b"two", if_match=first.sha256, author=me)
    with pytest.raises(PreconditionFailed) as caught:
        await host.write_file(ws, "a.txt", b"three", if_match=first.sha256, author=me)
    assert caught.value.current_sha256 == second.sha256
    assert pickle.loads(pickle.dumps(caught.value)).current_sha256 == second.sha256
    with pytest.raises(PreconditionFailed):
        await host.write_file(ws, "new.txt", b"x", if_match="*", author=me)
    with pytest.raises(PreconditionFailed):
        await host.delete_file(ws, "a.txt", if_match=first.sha256, author=me)
    quoted = f'"{second.sha256}"'
    assert (await host.write_file(ws, "a.txt", b"3", if_match=quoted, author=me)).version == 3
    assert (await host.write_file(ws, "a.txt", b"4", if_match="*", author=me)).version == 4


async def test_quotas(
    host: WorkspaceHostCore,
    reader: WorkspaceReader,
    ws: str,
    me: Author,
    settings: WorkspaceSettings,
) -> None:
    with pytest.raises(QuotaExceeded) as caught:
        await host.write_file(
            ws, "big.bin", b"x" * (settings.max_file_bytes + 1), if_match=None, author=me
        )
    assert caught.value.limit_bytes == settings.max_file_bytes
    chunk = b"y" * settings.max_file_bytes
    for i in range(4):
        await host.write_file(ws, f"f{i}.bin", chunk, if_match=None, author=me)
    with pytest.raises(QuotaExceeded) as caught:
        await host.write_file(ws, "f4.bin", b"z", if_match=None, author=me)
    assert caught.value.limit_bytes == settings.max_workspace_bytes
    # Shrinking is always allowed, and then there is room again.
    await host.write_file(ws, "f0.bin", b"small", if_match=None, author=me)
    await host.write_file(ws, "f4.bin", b"z", if_match=None, author=me)
    with pytest.raises(QuotaExceeded) as caught:
        await host.apply_batch(
            ws, {f"many/{i}": b"" for i in range(settings.max_files)}, author=me, message="m"
        )
    assert caught.value.limit_files == settings.max_files
    assert {info.path for info in await reader.list_files(ws)} == {f"f{i}.bin" for i in range(5)}


async def test_paths_are_validated_and_files_cannot_shadow_directories(
    host: WorkspaceHostCore, ws: str, me: Author
) -> None:
    for bad in ("../x", "/abs", "a//b", "a\x00b", "a/"):
        with pytest.raises(InvalidPath):
            await host.write_file(ws, bad, b"x", if_match=None, author=me)
    await host.write_file(ws, "dir/file.txt", b"x", if_match=None, author=me)
    with pytest.raises(InvalidPath):
        await host.write_file(ws, "dir", b"x", if_match=None, author=me)
    with pytest.raises(InvalidPath):
        await host.write_file(ws, "dir/file.txt/deeper", b"x", if_match=None, author=me)


async def test_move_and_delete(
    host: WorkspaceHostCore,
    reader: WorkspaceReader,
    ws: str,
    me: Author,
    settings: WorkspaceSettings,
) -> None:
    await host.apply_batch(
        ws, {"src/a.py": b"a", "src/sub/b.py": b"b", "top.txt": b"t"}, author=me, message="init"
    )
    moved = await host.move_file(ws, "top.txt", "docs/top.txt", author=me)
    assert {(c.path, c.kind) for c in moved.changes} == {
        ("top.txt", "deleted"),
        ("docs/top.txt", "added"),
    }
    with pytest.raises(PreconditionFailed):
        await host.move_file(ws, "src/a.py", "docs/top.txt", author=me)
    with pytest.raises(FileNotFoundInWorkspace):
        await host.move_file(ws, "nope.txt", "x.txt", author=me)
    await host.move_file(ws, "src", "lib", author=me)  # A directory moves with its files.
    assert [i.path for i in await reader.list_files(ws)] == [
        "docs/top.txt",
        "lib/a.py",
        "lib/sub/b.py",
    ]
    deleted = await host.delete_file(ws, "lib/a.py", if_match=digest_of(b"a"), author=me)
    assert [(c.path, c.kind) for c in deleted.changes] == [("lib/a.py", "deleted")]
    with pytest.raises(FileNotFoundInWorkspace):
        await host.delete_file(ws, "lib/a.py", if_match=None, author=me)
    with pytest.raises(FileNotFoundInWorkspace):
        await reader.read_file(ws, "lib/a.py")
    await host.delete_file(ws, "lib", if_match=None, author=me)
    assert tree_files(Path(settings.trees_dir or "") / ws) == {"docs/top.txt": b"t"}
    assert not (Path(settings.trees_dir or "") / ws / "lib").exists()


async def test_apply_batch_is_one_version(
    host: WorkspaceHostCore, reader: WorkspaceReader, ws: str, me: Author
) -> None:
    await host.apply_batch(ws, {"a": b"1", "b": b"2", "c": b"3"}, author=me, message="first")
    info = await host.apply_batch(
        ws, {"a": b"1", "b": b"changed", "c": None, "d": b"4"}, author=me, message="second"
    )
    assert info.number == 2
    assert info.message == "second"
    assert [(c.path, c.kind) for c in info.changes] == [
        ("b", "modified"),
        ("c", "deleted"),
        ("d", "added"),
    ]
    replaced = await host.apply_batch(ws, {"only": b"x"}, author=me, message="r", replace_all=True)
    assert [i.path for i in await reader.list_files(ws)] == ["only"]
    assert replaced.number == 3
    same = await host.apply_batch(ws, {"only": b"x"}, author=me, message="noop")
    assert same.number == 3
    assert same.changes == ()


async def test_restore_is_a_new_version_and_can_be_undone_and_diff(
    host: WorkspaceHostCore,
    reader: WorkspaceReader,
    ws: str,
    me: Author,
    settings: WorkspaceSettings,
) -> None:
    await host.apply_batch(
        ws, {"a.txt": b"line 1\nline 2\n", "img.bin": BINARY}, author=me, message="v1"
    )
    await host.apply_batch(
        ws,
        {"a.txt": b"line 1\nline two\n", "img.bin": None, "b.txt": b"new\n"},
        author=me,
        message="v2",
    )
    restored = await host.restore(ws, 1, author=me)
    assert restored.number == 3
    assert restored.restored_from == 1
    assert {i.path: i.sha256 for i in await reader.list_files(ws)} == {
        "a.txt": digest_of(b"line 1\nline 2\n"),
        "img.bin": digest_of(BINARY),
    }
    assert tree_files(Path(settings.trees_dir or "") / ws) == {
        "a.txt": b"line 1\nline 2\n",
        "img.bin": BINARY,
    }
    undone = await host.restore(ws, 2, author=me)  # Undo the restore.
    assert undone.number == 4
    assert (await reader.read_file(ws, "b.txt"))[1] == b"new\n"
    with pytest.raises(VersionNotFound):
        await host.restore(ws, 99, author=me)

    diffs = {d.change.path: d for d in await reader.diff(ws, 1, 2)}
    assert {p: d.change.kind for p, d in diffs.items()} == {
        "a.txt": "modified",
        "b.txt": "added",
        "img.bin": "deleted",
    }
    assert diffs["a.txt"].diff is not None
    assert "-line 2\n+line two\n" in diffs["a.txt"].diff
    assert diffs["img.bin"].binary
    assert diffs["img.bin"].diff is None
    assert [c.path for c in await reader.changes(ws, 2, 1)] == ["a.txt", "b.txt", "img.bin"]
    detail = await reader.get_version(ws, 3)
    assert detail.restored_from == 1
    assert {c.path for c in detail.changes} == set(diffs)


async def test_archive_round_trip(
    host: WorkspaceHostCore, reader: WorkspaceReader, ws: str, me: Author
) -> None:
    files = {"README.md": b"# demo\n", "bin/data.bin": BINARY}
    await host.apply_batch(ws, dict[str, bytes | None](files), author=me, message="init")
    archive = await reader.archive(ws)
    limits = {"max_files": 10, "max_total_bytes": 10**6, "max_file_bytes": 10**6}
    assert read_zip(archive, **limits) == files
    other = await host.apply_batch(ws, {"x": b"later"}, author=me, message="later")
    assert read_zip(await reader.archive(ws, version=other.number - 1), **limits) == files


def run_script(path: Path) -> bytes:
    """Run ``path`` as ``./script`` would: refused unless the file is executable."""
    return subprocess.run([path], cwd=path.parent, capture_output=True, check=True).stdout


async def test_chmod_in_the_tree_is_versioned_and_survives_unload_restore_and_zip(
    host: WorkspaceHostCore,
    reader: WorkspaceReader,
    database: Database,
    user_id: str,
    ws: str,
    me: Author,
    settings: WorkspaceSettings,
) -> None:
    script = b"#!/bin/sh\necho ran\n"
    await host.write_file(ws, "run.sh", script, if_match=None, author=me)
    tree_root = Path(settings.trees_dir or "") / ws
    # What ``chmod +x run.sh`` and a new executable do in a sandbox (the tree is its /workspace).
    (tree_root / "run.sh").chmod(0o775)
    (tree_root / "tool").write_bytes(script)
    (tree_root / "tool").chmod(0o4700)
    report = await host.sync(ws, author=me)
    assert report.version == 2
    assert report.files_changed == ("run.sh", "tool")
    assert {f.path: f.mode for f in await reader.list_files(ws)} == {
        "run.sh": 0o755,
        "tool": 0o755,  # Only the x bit is versioned, never setuid.
    }
    assert [(c.path, c.kind) for c in (await reader.get_version(ws, 2)).changes] == [
        ("run.sh", "modified"),
        ("tool", "added"),
    ]
    assert (await host.sync(ws, author=me)).version is None  # Nothing changed since.

    # Unloaded and its working tree lost: the tree is rebuilt from durable state.
    await host.close(ws)
    shutil.rmtree(tree_root)
    await host.session(ws)
    assert run_script(tree_root / "run.sh") == b"ran\n"
    assert run_script(tree_root / "tool") == b"ran\n"

    # ``chmod -x`` alone is a version too; restoring the earlier one makes it executable again.
    (tree_root / "run.sh").chmod(0o644)
    assert (await host.sync(ws, author=me)).files_changed == ("run.sh",)
    with pytest.raises(PermissionError):
        run_script(tree_root / "run.sh")
    await host.restore(ws, 2, author=me)
    assert run_script(tree_root / "run.sh") == b"ran\n"

    # A tree whose modes drifted (same bytes) is corrected when the session reopens on it.
    await host.close(ws)
    (tree_root / "tool").chmod(0o644)
    WorkingTree(tree_root).clear_head()
    await host.session(ws)
    assert run_script(tree_root / "tool") == b"ran\n"

    # A download uploaded into another workspace keeps +x.
    archive = await reader.archive(ws)
    other = await new_workspace(database, user_id, "copy")
    unpacked = unpack_zip(archive, max_files=10, max_total_bytes=10**6, max_file_bytes=10**6)
    files = dict[str, bytes | None](unpacked.files)
    await host.apply_batch(other, files, author=me, message="upload", modes=unpacked.modes)
    assert {f.path: f.mode for f in await reader.list_files(other)} == {
        "run.sh": 0o755,
        "tool": 0o755,
    }
    assert run_script(Path(settings.trees_dir or "") / other / "tool") == b"ran\n"
    # Without modes (an archive made on Windows, or an agent's batch) a file keeps its mode.
    await host.apply_batch(other, {"tool": b"#!/bin/sh\necho v2\n"}, author=me, message="v2")
    assert run_script(Path(settings.trees_dir or "") / other / "tool") == b"v2\n"


async def test_twenty_concurrent_writers_lose_nothing(
    host: WorkspaceHostCore, reader: WorkspaceReader, ws: str, me: Author
) -> None:
    async def writer(n: int) -> list[int]:
        numbers = []
        for round_ in range(3):
            data = f"writer {n} round {round_}\n".encode()
            numbers.append(
                (await host.write_file(ws, f"w/{n}.txt", data, if_match=None, author=me)).version
            )
        shared = await host.write_file(
            ws, "shared.log", f"last: {n}".encode(), if_match=None, author=me
        )
        return [*numbers, shared.version]

    results = await asyncio.gather(*(writer(n) for n in range(20)))
    all_versions = sorted(v for numbers in results for v in numbers)
    for numbers in results:
        assert numbers[:3] == sorted(numbers[:3])  # Each writer's versions are ordered.
    assert len(set(all_versions[:-1])) >= len(all_versions) - 20  # Only "shared" may repeat.
    head = (await reader.list_versions(ws, limit=1))[0].number
    changing = len({v for v in all_versions})
    assert head == changing == max(all_versions)
    assert [v.number for v in await reader.list_versions(ws, limit=200)] == list(range(head, 0, -1))
    for n in range(20):
        assert (await reader.read_file(ws, f"w/{n}.txt"))[1] == f"writer {n} round 2\n".encode()
    assert (await host.sessions())[0].writes == head
    assert host.stats().open_sessions == 1


async def test_a_second_host_fences_the_first(
    database: Database,
    blobs: LocalBlobStore,
    settings: WorkspaceSettings,
    host: WorkspaceHostCore,
    reader: WorkspaceReader,
    ws: str,
    me: Author,
    tmp_path: Path,
) -> None:
    await host.write_file(ws, "a.txt", b"from a", if_match=None, author=me)
    other_settings = settings.model_copy(update={"trees_dir": tmp_path / "trees-b"})
    async with WorkspaceHostCore("host-b", db=database, blobs=blobs, settings=other_settings) as b:
        await b.write_file(ws, "b.txt", b"from b", if_match=None, author=me)
        with pytest.raises(LeaseLost) as caught:
            await host.write_file(ws, "a.txt", b"stale write", if_match=None, author=me)
        assert isinstance(pickle.loads(pickle.dumps(caught.value)), LeaseLost)
        assert host.stats().lease_lost == 1
        assert host.stats().open_sessions == 0
        assert (await reader.read_file(ws, "a.txt"))[1] == b"from a"
        assert [v.number for v in await reader.list_versions(ws)] == [2, 1]
        # The fenced host takes the workspace back on its next call, fencing b in turn.
        await host.write_file(ws, "a.txt", b"a again", if_match=None, author=me)
        with pytest.raises(LeaseLost):
            await b.write_file(ws, "b.txt", b"b again", if_match=None, author=me)
    assert {
        i.path: (await reader.read_file(ws, i.path))[1] for i in await reader.list_files(ws)
    } == {
        "a.txt": b"a again",
        "b.txt": b"from b",
    }


async def test_crash_recovery_keeps_every_acknowledged_write(
    database: Database, blobs: LocalBlobStore, settings: WorkspaceSettings, ws: str, me: Author
) -> None:
    crashed = WorkspaceHostCore("doomed", db=database, blobs=blobs, settings=settings)
    acknowledged = {}
    for i in range(10):
        data = f"file {i}".encode()
        await crashed.write_file(ws, f"f{i}.txt", data, if_match=None, author=me)
        acknowledged[f"f{i}.txt"] = data
    # The process dies: no close, no lease release; its working tree is half gone and tampered.
    tree_root = Path(settings.trees_dir or "") / ws
    (tree_root / "f3.txt").unlink()
    (tree_root / "f4.txt").write_bytes(b"corrupted by a sandbox")
    os.symlink("/etc", tree_root / "etc")
    del crashed
    async with WorkspaceHostCore("reborn", db=database, blobs=blobs, settings=settings) as reborn:
        assert (
            await reborn.write_file(ws, "f0.txt", b"file 0", if_match=None, author=me)
        ).changed is False
        # The sidecar named an older version than the head (it is written when a session
        # closes, and this one never did), so opening re-materialized the tree.
        assert tree_files(tree_root) == acknowledged
        assert not (tree_root / "etc").exists()
        # After a clean close the sidecar names the head: drop it the way a lost disk would.
        await reborn.close(ws)
        assert WorkingTree(tree_root).read_head() is not None  # A reopen would trust the tree.
        WorkingTree(tree_root).clear_head()
        await reborn.write_file(ws, "f10.txt", b"after", if_match=None, author=me)
    assert tree_files(tree_root) == {**acknowledged, "f10.txt": b"after"}
    assert not (tree_root / "etc").exists()

    shutil.rmtree(tree_root)  # The whole working tree is lost.
    async with WorkspaceHostCore("third", db=database, blobs=blobs, settings=settings) as third:
        await third.session(ws)
        assert tree_files(tree_root) == {**acknowledged, "f10.txt": b"after"}


async def test_purge_deletes_unshared_blobs_and_keeps_shared_ones(
    database: Database,
    blobs: LocalBlobStore,
    host: WorkspaceHostCore,
    user_id: str,
    me: Author,
) -> None:
    doomed = await new_workspace(database, user_id, "doomed")
    kept = await new_workspace(database, user_id, "kept")
    await host.apply_batch(
        doomed, {"shared.txt": b"shared", "own.txt": b"own v1"}, author=me, message=""
    )
    await host.write_file(doomed, "own.txt", b"own v2", if_match=None, author=me)
    await host.delete_file(doomed, "own.txt", if_match=None, author=me)
    await host.apply_batch(
        kept, {"copy.txt": b"shared", "mine.txt": b"mine"}, author=me, message=""
    )
    await host.close(doomed)
    before = {d async for d in blobs.iter_digests()}

    async with database.session() as session, session.begin():
        await session.execute(
            update(Workspace).where(Workspace.id == doomed).values(deleted_at=utcnow())
        )
    assert (
        await purge_deleted_workspaces(database, blobs, older_than=utcnow() - timedelta(hours=1))
        == 0
    )
    assert (
        await purge_deleted_workspaces(database, blobs, older_than=utcnow() + timedelta(seconds=1))
        == 1
    )

    after = {d async for d in blobs.iter_digests()}
    async with database.session() as session:
        # Manifest blobs exist only for versions made before revision 0005 (none here).
        manifests = {d for d in await session.scalars(select(Version.manifest_sha256)) if d}
        assert (
            await session.scalar(
                select(func.count()).select_from(Workspace).where(Workspace.id == doomed)
            )
            == 0
        )
    kept_reader = WorkspaceReader(database, blobs)
    still_needed = {i.sha256 for i in await kept_reader.list_files(kept)} | manifests
    assert after == still_needed  # Nothing orphaned, nothing the kept workspace needs deleted.
    assert digest_of(b"own v1") in before
    assert digest_of(b"own v1") not in after
    assert digest_of(b"shared") in after
    with pytest.raises(WorkspaceNotFound):
        await kept_reader.list_files(doomed)


async def test_sessions_open_lazily_once_and_unload_when_idle(
    database: Database, blobs: LocalBlobStore, settings: WorkspaceSettings, user_id: str, me: Author
) -> None:
    ids = [await new_workspace(database, user_id, f"w{i}") for i in range(200)]
    async with WorkspaceHostCore("many", db=database, blobs=blobs, settings=settings) as core:
        sessions = await asyncio.gather(*(core.session(ids[0]) for _ in range(10)))
        assert len({id(s) for s in sessions}) == 1
        assert core.stats().sessions_opened == 1
        await asyncio.gather(*(core.session(w) for w in ids))
        assert core.stats().open_sessions == 200
        infos = await LocalWorkspaceWriter(core).sessions()
        assert {i.workspace_id for i in infos} == set(ids)
        assert all(i.host == "many" for i in infos)
    async with database.session() as session:
        owners = set(
            await session.scalars(select(Workspace.lease_owner).where(Workspace.id.in_(ids)))
        )
    assert owners == {None}  # Closing the host released every lease.

    quick = settings.model_copy(update={"idle_timeout_s": 0.2})
    async with WorkspaceHostCore("quick", db=database, blobs=blobs, settings=quick) as core:
        writer = LocalWorkspaceWriter(core)
        await writer.write_file(ids[1], "x.txt", b"x", if_match=None, author=me)
        for _ in range(100):
            if core.stats().open_sessions == 0:
                break
            await asyncio.sleep(0.05)
        assert core.stats().open_sessions == 0
        # An unloaded workspace reopens on the next call with its files intact.
        assert (
            await writer.write_file(ids[1], "x.txt", b"x", if_match=None, author=me)
        ).changed is False


async def test_unknown_and_deleted_workspaces(
    host: WorkspaceHostCore, reader: WorkspaceReader, database: Database, ws: str, me: Author
) -> None:
    with pytest.raises(WorkspaceNotFound):
        await host.write_file("0" * 32, "a.txt", b"x", if_match=None, author=me)
    await host.write_file(ws, "a.txt", b"x", if_match=None, author=me)
    async with database.session() as session, session.begin():
        await session.execute(
            update(Workspace).where(Workspace.id == ws).values(deleted_at=utcnow())
        )
    with pytest.raises(WorkspaceNotFound):
        await host.write_file(ws, "a.txt", b"y", if_match=None, author=me)
    assert host.stats().open_sessions == 0
    with pytest.raises(WorkspaceNotFound):
        await reader.read_file(ws, "a.txt")
