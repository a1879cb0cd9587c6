"""The working tree never reads or writes outside its root, whatever is planted inside it."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from actors.workspace.api import FileNotFoundInWorkspace, InvalidPath
from actors.workspace.tree import TreeHead, WorkingTree


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A sibling directory outside the tree holding a secret the tree must never touch."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.txt").write_bytes(b"top secret")
    return directory


@pytest.fixture
def tree(tmp_path: Path) -> WorkingTree:
    return WorkingTree(tmp_path / "trees" / "ws1")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_write_read_delete_round_trip_and_empty_parents_go(tree: WorkingTree) -> None:
    tree.write("src/pkg/mod.py", b"print(1)\n")
    tree.write("README.md", b"\x00\xffbinary")
    assert tree.read("src/pkg/mod.py") == b"print(1)\n"
    assert tree.read("README.md") == b"\x00\xffbinary"
    assert tree.delete("src/pkg/mod.py")
    assert not (tree.root / "src").exists()
    assert not tree.delete("src/pkg/mod.py")
    with pytest.raises(FileNotFoundInWorkspace):
        tree.read("src/pkg/mod.py")


def test_writes_are_atomic_renames_and_leave_no_temporaries(tree: WorkingTree) -> None:
    tree.write("a.txt", b"one")
    inode_before = os.stat(tree.root / "a.txt").st_ino
    tree.write("a.txt", b"two")
    assert os.stat(tree.root / "a.txt").st_ino != inode_before  # Replaced, not rewritten in place.
    assert sorted(os.listdir(tree.root)) == ["a.txt"]
    assert (tree.root / "a.txt").read_bytes() == b"two"


def test_hostile_paths_are_refused(tree: WorkingTree) -> None:
    for path in ("../escape", "/etc/passwd", "a/../../b", "a\x00b"):
        with pytest.raises(InvalidPath):
            tree.write(path, b"x")
        with pytest.raises(InvalidPath):
            tree.read(path)


def test_file_symlink_to_etc_is_never_read_and_writing_replaces_the_link(tree: WorkingTree) -> None:
    tree.write("keep.txt", b"k")
    os.symlink("/etc/passwd", tree.root / "passwd")
    passwd_before = Path("/etc/passwd").read_bytes()
    with pytest.raises(InvalidPath):
        tree.read("passwd")
    tree.write("passwd", b"mine")
    assert Path("/etc/passwd").read_bytes() == passwd_before
    assert not (tree.root / "passwd").is_symlink()
    assert tree.read("passwd") == b"mine"


def test_directory_symlink_in_the_middle_of_a_path(tree: WorkingTree, outside: Path) -> None:
    tree.write("src/a.txt", b"a")
    os.symlink(outside, tree.root / "link")
    with pytest.raises(InvalidPath):
        tree.read("link/secret.txt")
    tree.write("link/new.txt", b"planted?")
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"top secret"
    assert (tree.root / "link").is_dir()
    assert not (tree.root / "link").is_symlink()
    # Deleting through a (re-planted) symlinked directory does not touch the target either.
    (tree.root / "link" / "new.txt").unlink()
    (tree.root / "link").rmdir()
    os.symlink(outside, tree.root / "link")
    assert not tree.delete("link/secret.txt")
    assert (outside / "secret.txt").exists()


def test_relative_symlink_climbing_out_and_symlinked_parent_chain(
    tree: WorkingTree, outside: Path
) -> None:
    tree.write("deep/er/x.txt", b"x")
    os.symlink("../../../outside", tree.root / "deep" / "up")
    with pytest.raises(InvalidPath):
        tree.read("deep/up/secret.txt")
    tree.write("deep/up/secret.txt", b"overwritten?")
    assert (outside / "secret.txt").read_bytes() == b"top secret"


def test_hard_links_are_neither_read_nor_written_through(tree: WorkingTree, outside: Path) -> None:
    tree.write("x.txt", b"x")
    os.link(outside / "secret.txt", tree.root / "alias.txt")
    with pytest.raises(InvalidPath):
        tree.read("alias.txt")
    tree.write("alias.txt", b"replaced")
    assert (outside / "secret.txt").read_bytes() == b"top secret"
    assert tree.read("alias.txt") == b"replaced"


def test_a_file_where_a_directory_should_be_is_replaced_on_write(tree: WorkingTree) -> None:
    tree.write("a", b"file")
    tree.write("a/b.txt", b"nested")
    assert tree.read("a/b.txt") == b"nested"
    tree.write("a", b"file again")  # And a directory in the way of a file is replaced too.
    assert tree.read("a") == b"file again"


def test_scan_hashes_regular_files_and_reports_everything_else(
    tree: WorkingTree, outside: Path
) -> None:
    tree.write("src/a.py", b"a")
    tree.write("b.bin", b"\x00\x01")
    os.symlink("/etc/passwd", tree.root / "passwd")
    os.symlink(outside, tree.root / "src" / "out")
    os.mkfifo(tree.root / "pipe")
    os.link(outside / "secret.txt", tree.root / "alias")
    (tree.root / "bad\x01name").write_bytes(b"?")
    scan = tree.scan()
    assert scan.files == {"src/a.py": (1, _sha(b"a")), "b.bin": (2, _sha(b"\x00\x01"))}
    assert dict(scan.skipped) == {
        "passwd": "symlink",
        "src/out": "symlink",
        "pipe": "special file",
        "alias": "hard link",
        "bad\x01name": "invalid name",
    }


async def test_materialize_makes_the_tree_match_exactly(tree: WorkingTree, outside: Path) -> None:
    blobs = {_sha(b"one"): b"one", _sha(b"two"): b"two", _sha(b"new"): b"new"}
    fetched: list[str] = []

    async def fetch(digest: str) -> bytes:
        fetched.append(digest)
        return blobs[digest]

    tree.write("keep.txt", b"one")
    tree.write("stale/old.txt", b"old")
    tree.write("change.txt", b"xxx")
    os.symlink(outside, tree.root / "escape")
    os.symlink("/etc/passwd", tree.root / "p")
    (tree.root / ".~vc-tmp.deadbeef").write_bytes(b"leftover")
    manifest = {"keep.txt": _sha(b"one"), "change.txt": _sha(b"two"), "n/e/w.txt": _sha(b"new")}
    await tree.materialize(manifest, fetch)
    scan = tree.scan()
    assert {path: sha for path, (_, sha) in scan.files.items()} == manifest
    assert scan.skipped == []
    assert sorted(os.listdir(tree.root)) == ["change.txt", "keep.txt", "n"]
    assert sorted(fetched) == sorted([_sha(b"two"), _sha(b"new")])  # keep.txt already matched.
    assert sorted(os.listdir(outside)) == ["secret.txt"]


async def test_scan_and_materialize_keep_the_executable_bit(tree: WorkingTree) -> None:
    tree.write("run.sh", b"#!/bin/sh\n", 0o755)
    tree.write("notes.txt", b"n")
    os.chmod(tree.root / "notes.txt", 0o4711)  # As ``chmod`` in a sandbox could.
    assert tree.scan().modes == {"run.sh": 0o755, "notes.txt": 0o755}

    fetched: list[str] = []

    async def fetch(digest: str) -> bytes:
        fetched.append(digest)
        return {_sha(b"#!/bin/sh\n"): b"#!/bin/sh\n", _sha(b"n"): b"n"}[digest]

    manifest = {"run.sh": _sha(b"#!/bin/sh\n"), "notes.txt": _sha(b"n")}
    await tree.materialize(manifest, fetch, {"run.sh": 0o755})
    # Same bytes, other mode: rewritten with the recorded mode (0o644 when none is given).
    assert fetched == [_sha(b"n")]
    assert stat.S_IMODE(os.stat(tree.root / "run.sh").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tree.root / "notes.txt").st_mode) == 0o644


async def test_materialize_from_nothing_and_the_sidecar(tree: WorkingTree) -> None:
    assert tree.read_head() is None

    async def fetch(digest: str) -> bytes:
        return b"data"

    await tree.materialize({"a/b.txt": _sha(b"data")}, fetch)
    assert tree.read("a/b.txt") == b"data"
    head = TreeHead(3, "f" * 64)
    tree.write_head(head)
    assert tree.read_head() == head
    assert tree.sidecar.parent == tree.root.parent  # Outside the tree: sandboxes cannot forge it.
    tree.clear_head()
    assert tree.read_head() is None


def test_file_modes_are_kept(tree: WorkingTree) -> None:
    tree.write("run.sh", b"#!/bin/sh\n", 0o755)
    assert os.stat(tree.root / "run.sh").st_mode & 0o777 == 0o755
