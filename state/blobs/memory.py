"""An in-memory blob store: the fake for tests and a scratch store for tools."""

from __future__ import annotations

from collections.abc import AsyncIterator

from state.blobs.protocol import BlobRef, check_digest, digest_of, verify
from state.errors import BlobNotFound

__all__ = ["MemoryBlobStore"]


class MemoryBlobStore:
    """Keeps blobs in a dict. Not durable; behaves like the real backends otherwise."""

    def __init__(self) -> None:
        # Public on purpose: tests corrupt entries here to exercise integrity checks.
        self.blobs: dict[str, bytes] = {}

    async def put(self, data: bytes) -> BlobRef:
        digest = digest_of(data)
        self.blobs.setdefault(digest, bytes(data))
        return BlobRef(sha256=digest, size=len(data))

    async def get(self, digest: str) -> bytes:
        check_digest(digest)
        try:
            data = self.blobs[digest]
        except KeyError:
            raise BlobNotFound(digest) from None
        return verify(digest, data)

    async def exists(self, digest: str) -> bool:
        return check_digest(digest) in self.blobs

    async def delete(self, digest: str) -> bool:
        return self.blobs.pop(check_digest(digest), None) is not None

    async def iter_digests(self) -> AsyncIterator[str]:
        for digest in list(self.blobs):
            yield digest

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
