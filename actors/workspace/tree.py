"""A session's working tree on local disk: a cache of the durable state, symlink-safe.

Code running in a sandbox can later change the tree (it is bind-mounted there), so nothing in it
is trusted: every operation walks from a directory fd of the root, one component at a time, with
``O_NOFOLLOW``. A symlink (or a file where a directory should be) is never followed: reads and
scans refuse it, writes replace it. Files with more than one hard link are refused too, since a
hard link could alias a file outside the tree. Writes go to a temporary file in the target
directory and are renamed into place, so readers never see half a file.

The sidecar file ``<root>.head`` (outside the tree, where a sandbox cannot reach it) records which
version the tree reflects; the session rewrites it only after the tree matches that version.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from actors.workspace.api import FileNotFoundInWorkspace, InvalidPath, WorkspaceError
from actors.workspace.bounded import map_bounded
from actors.workspace.manifest import DEFAULT_MODE, file_mode
from actors.workspace.paths import validate_path
from state.threads import run_sync

__all__ = ["TreeHead", "TreeScan", "WorkingTree"]

# Temporary files of interrupted writes carry this prefix: scans skip them, materialize
# removes them.
TEMP_PREFIX = ".~vc-tmp."
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MATERIALIZE_BATCH = 32


@dataclass(frozen=True, slots=True)
class TreeHead:
    """The version a tree reflects: its number and its row id ("" for version 0), so a version
    number that names other contents (say, a database restored from a backup) never matches."""

    version: int
    version_id: str


@dataclass(slots=True)
class TreeScan:
    """Regular files (path -> (size, sha256)), their modes as a version records them
    (``file_mode``), and everything skipped, with the reason."""

    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)


class WorkingTree:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.sidecar = self.root.with_name(self.root.name + ".head")

    # --- the sidecar --------------------------------------------------------------------------

    def read_head(self) -> TreeHead | None:
        """The version the tree reflects, or None if unknown (missing tree or sidecar)."""
        try:
            body = json.loads(self.sidecar.read_text())
            # A sidecar of the older format (keyed by manifest) reads as unknown: re-materialize.
            head = TreeHead(int(body["version"]), str(body["version_id"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return head if self.root.is_dir() and not self.root.is_symlink() else None

    def write_head(self, head: TreeHead) -> None:
        body = json.dumps({"version": head.version, "version_id": head.version_id})
        temp = self.sidecar.with_name(f"{self.sidecar.name}.{secrets.token_hex(4)}.tmp")
        temp.write_text(body)
        os.replace(temp, self.sidecar)

    def clear_head(self) -> None:
        self.sidecar.unlink(missing_ok=True)

    # --- single files ---------------------------------------------------------------------------

    def write(self, path: str, data: bytes, mode: int = DEFAULT_MODE) -> None:
        """Make ``path`` hold ``data``, replacing (never following) anything in the way."""
        *parents, name = validate_path(path).split("/")
        with self._walk(parents, create=True) as fds:
            _write_at(fds[-1], name, data, mode)

    def delete(self, path: str) -> bool:
        """Remove ``path`` and then its parents that became empty; False if it was absent."""
        *parents, name = validate_path(path).split("/")
        with self._walk(parents, create=False) as fds:
            if len(fds) <= len(parents):
                return False  # A parent is missing (or is not a directory): nothing to delete.
            removed = _remove_at(fds[-1], name)
            for depth in range(len(parents), 0, -1):
                try:
                    os.rmdir(parents[depth - 1], dir_fd=fds[depth - 1])
                except OSError:
                    break  # Not empty (or already gone): stop climbing.
        return removed

    def read(self, path: str) -> bytes:
        """The bytes of ``path``; ``InvalidPath`` if a symlink or special file is on the way."""
        *parents, name = validate_path(path).split("/")
        with self._walk(parents, create=False, strict=True) as fds:
            if len(fds) <= len(parents):
                raise FileNotFoundInWorkspace(f"no such file in the working tree: {path!r}")
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fds[-1])
            except FileNotFoundError:
                raise FileNotFoundInWorkspace(
                    f"no such file in the working tree: {path!r}"
                ) from None
            except OSError as exc:
                raise InvalidPath(f"{path!r} is not a regular file ({exc.strerror})") from None
            with os.fdopen(fd, "rb") as file:
                info = os.fstat(file.fileno())
                if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                    raise InvalidPath(f"{path!r} is not a regular file with a single link")
                return file.read()

    # --- whole tree -----------------------------------------------------------------------------

    def scan(self) -> TreeScan:
        """Hash every regular file; report symlinks, special files, hard links and bad names."""
        result = TreeScan()
        if not self.root.is_dir():
            return result
        root_fd = os.open(self.root, _DIR_FLAGS)
        try:
            _scan_dir(root_fd, "", result)
        finally:
            os.close(root_fd)
        return result

    async def materialize(
        self,
        manifest: Mapping[str, str],
        fetch: Callable[[str], Awaitable[bytes]],
        modes: Mapping[str, int] | None = None,
    ) -> None:
        """Make the tree hold exactly ``manifest`` (path -> sha256), fetching missing content;
        files get their mode from ``modes`` (``DEFAULT_MODE`` for paths not in it).

        Files whose content and mode already match are kept; everything else (stale files,
        symlinks, special files, leftovers of interrupted writes, empty directories) is removed.
        """
        modes = modes or {}
        self.clear_head()
        await run_sync(self._ensure_root)
        scan = await run_sync(self.scan)
        missing = [
            path
            for path, sha in manifest.items()
            if scan.files.get(path, (0, ""))[1] != sha
            or scan.modes.get(path) != modes.get(path, DEFAULT_MODE)
        ]
        for start in range(0, len(missing), _MATERIALIZE_BATCH):
            batch = missing[start : start + _MATERIALIZE_BATCH]
            datas = await map_bounded(fetch, [manifest[path] for path in batch])
            contents = dict(zip(batch, datas, strict=True))
            await run_sync(self._write_many, contents, modes)
        await run_sync(self._prune, set(manifest))

    def _ensure_root(self) -> None:
        if self.root.is_symlink() or (self.root.exists() and not self.root.is_dir()):
            self.root.unlink()
        self.root.mkdir(parents=True, exist_ok=True)

    def _write_many(self, contents: Mapping[str, bytes], modes: Mapping[str, int]) -> None:
        for path, data in contents.items():
            self.write(path, data, modes.get(path, DEFAULT_MODE))

    def _prune(self, keep: set[str]) -> None:
        root_fd = os.open(self.root, _DIR_FLAGS)
        try:
            _prune_dir(root_fd, "", keep)
        finally:
            os.close(root_fd)

    @contextmanager
    def _walk(
        self, parents: list[str], *, create: bool, strict: bool = False
    ) -> Iterator[list[int]]:
        """Yield the fds of the root and of each parent reached (fewer if one is missing).

        With ``create``, missing directories are made and obstacles (symlinks, files) replaced.
        With ``strict``, an obstacle raises ``InvalidPath``; otherwise the walk stops there.
        """
        if create:
            self._ensure_root()
        fds: list[int] = []
        try:
            try:
                fds.append(os.open(self.root, _DIR_FLAGS))
            except FileNotFoundError:
                yield fds[:0]
                return
            for name in parents:
                fd = _open_dir_at(fds[-1], name, create=create, strict=strict)
                if fd is None:
                    break
                fds.append(fd)
            yield fds
        finally:
            for fd in fds:
                os.close(fd)


def _open_dir_at(parent: int, name: str, *, create: bool, strict: bool) -> int | None:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            return None
    except OSError as exc:  # ELOOP (a symlink) or ENOTDIR (a file): an obstacle.
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        if strict:
            raise InvalidPath(f"{name!r} is a symlink or not a directory") from None
        if not create:
            return None
        _remove_at(parent, name)
    # Created concurrently? The open below still refuses anything but a directory.
    with suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=parent)
    return os.open(name, _DIR_FLAGS, dir_fd=parent)


def _write_at(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    temp = f"{TEMP_PREFIX}{secrets.token_hex(6)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temp, flags, mode & 0o777, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode & 0o777)  # The umask must not change the recorded mode.
        finally:
            os.close(fd)
        try:
            os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except IsADirectoryError:
            shutil.rmtree(name, dir_fd=dir_fd)
            os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise


def _remove_at(dir_fd: int, name: str) -> bool:
    """Remove the entry ``name`` (a directory recursively, a symlink itself); False if absent."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)
    return True


def _entries(dir_fd: int) -> list[os.DirEntry[str]]:
    with os.scandir(dir_fd) as entries:
        return list(entries)


def _scan_dir(dir_fd: int, prefix: str, result: TreeScan) -> None:
    for entry in _entries(dir_fd):
        path = prefix + entry.name
        if entry.name.startswith(TEMP_PREFIX):
            continue
        try:
            validate_path(path)
        except WorkspaceError:
            result.skipped.append((path, "invalid name"))
            continue
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            try:
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                result.skipped.append((path, "directory vanished or was replaced"))
                continue
            try:
                _scan_dir(child, path + "/", result)
            finally:
                os.close(child)
        elif stat.S_ISLNK(info.st_mode):
            result.skipped.append((path, "symlink"))
        elif not stat.S_ISREG(info.st_mode):
            result.skipped.append((path, "special file"))
        elif info.st_nlink != 1:
            result.skipped.append((path, "hard link"))
        else:
            hashed = _hash_at(dir_fd, entry.name)
            if hashed is None:
                result.skipped.append((path, "replaced while scanning"))
            else:
                size, sha256, mode = hashed
                result.files[path] = (size, sha256)
                result.modes[path] = mode


def _hash_at(dir_fd: int, name: str) -> tuple[int, str, int] | None:
    """Size, sha256 and ``file_mode`` of the regular file ``name``; None if it is not one."""
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            return None
        digest = hashlib.sha256()
        size = 0
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest(), file_mode(info.st_mode)


def _prune_dir(dir_fd: int, prefix: str, keep: set[str]) -> bool:
    """Remove everything under ``dir_fd`` not in ``keep``; True if the directory is now empty."""
    empty = True
    for entry in _entries(dir_fd):
        path = prefix + entry.name
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            child = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                child_empty = _prune_dir(child, path + "/", keep)
            finally:
                os.close(child)
            if child_empty:
                os.rmdir(entry.name, dir_fd=dir_fd)
            else:
                empty = False
        elif path in keep and stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
            empty = False
        else:
            os.unlink(entry.name, dir_fd=dir_fd)
    return empty
