"""Blobs as files in a local folder, sharded as ``ab/cd/<digest>``.

A put writes a temporary file next to its final name, fsyncs it, renames it into place and
fsyncs the directory, so an acknowledged put survives a crash of the process or the host.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

from state.blobs.protocol import BlobRef, check_digest, digest_of, verify
from state.errors import BlobNotFound, StorageUnavailable
from state.threads import run_sync

__all__ = ["LocalBlobStore"]

_T = TypeVar("_T")
_HEX = frozenset("0123456789abcdef")


class LocalBlobStore:
    """Content-addressed blobs under ``root`` (created if missing)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    async def put(self, data: bytes) -> BlobRef:
        digest = digest_of(data)
        await self._io(self._put_sync, self._path(digest), bytes(data))
        return BlobRef(sha256=digest, size=len(data))

    async def get(self, digest: str) -> bytes:
        data = await self._io(_read_if_exists, self._path(check_digest(digest)))
        if data is None:
            raise BlobNotFound(digest)
        return verify(digest, data)

    async def exists(self, digest: str) -> bool:
        return await self._io(self._path(check_digest(digest)).is_file)

    async def delete(self, digest: str) -> bool:
        return await self._io(_delete_if_exists, self._path(check_digest(digest)))

    async def iter_digests(self) -> AsyncIterator[str]:
        # One thread hop per top-level shard keeps memory bounded for large stores.
        for shard in await self._io(_list_shards, self.root):
            for digest in await self._io(_list_blobs, shard):
                yield digest

    async def ping(self) -> None:
        def check() -> None:
            if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
                raise PermissionError(f"{self.root} is not a writable directory")

        await self._io(check)

    async def close(self) -> None:
        return None

    async def _io(self, func: Callable[..., _T], *args: object) -> _T:
        """Run blocking file I/O on a worker thread; OS errors mean the store is unusable."""
        try:
            return await run_sync(func, *args)
        except OSError as exc:
            raise StorageUnavailable("blobs", f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _put_sync(path: Path, data: bytes) -> None:
        if _holds(path, data):
            return  # Already stored intact. A damaged copy is replaced below.
        _make_dirs(path.parent)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)


def _holds(path: Path, data: bytes) -> bool:
    """True if ``path`` already holds exactly ``data``."""
    try:
        if path.stat().st_size != len(data):
            return False
        return digest_of(path.read_bytes()) == digest_of(data)
    except FileNotFoundError:
        return False


def _read_if_exists(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _delete_if_exists(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    _fsync_dir(path.parent)
    return True


def _make_dirs(directory: Path) -> None:
    """Create missing shard directories, making each new entry durable in its parent."""
    if directory.is_dir():
        return
    _make_dirs(directory.parent)
    try:
        directory.mkdir()
    except FileExistsError:
        return
    _fsync_dir(directory.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_shard(name: str, length: int) -> bool:
    return len(name) == length and set(name) <= _HEX


def _list_shards(root: Path) -> list[Path]:
    return [entry for entry in root.iterdir() if _is_shard(entry.name, 2) and entry.is_dir()]


def _list_blobs(shard: Path) -> list[str]:
    digests: list[str] = []
    for sub in shard.iterdir():
        if not (_is_shard(sub.name, 2) and sub.is_dir()):
            continue
        try:
            names = os.listdir(sub)
        except FileNotFoundError:
            continue
        digests.extend(name for name in names if _is_shard(name, 64))
    return digests
