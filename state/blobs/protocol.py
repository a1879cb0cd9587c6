"""The blob store port: immutable byte strings addressed by their SHA-256."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from state.errors import BlobIntegrityError, InvalidDigest

__all__ = ["BlobRef", "BlobStore", "check_digest", "digest_of", "verify"]

_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class BlobRef:
    """A stored blob: its lowercase hex SHA-256 and its size in bytes."""

    sha256: str
    size: int


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed storage; every backend passes tests/contract/test_blobstore_contract."""

    async def put(self, data: bytes) -> BlobRef:
        """Store ``data`` under its SHA-256 and return its ref.

        Idempotent: storing the same bytes again returns the same ref. Once this returns, the
        blob is durable (it survives a crash of this process or host, as far as the backend can).
        """
        ...

    async def get(self, digest: str) -> bytes:
        """Return the bytes of ``digest``.

        Raises ``BlobNotFound`` if absent, ``BlobIntegrityError`` if the stored bytes no longer
        hash to ``digest``, ``InvalidDigest`` if ``digest`` is not 64 lowercase hex characters.
        """
        ...

    async def exists(self, digest: str) -> bool:
        """Return True if a blob is stored under ``digest`` (its content is not verified)."""
        ...

    async def delete(self, digest: str) -> bool:
        """Delete the blob; return False if it did not exist."""
        ...

    def iter_digests(self) -> AsyncIterator[str]:
        """Yield the digest of every stored blob once, in no particular order.

        Blobs put or deleted while iterating may or may not be yielded.
        """
        ...

    async def ping(self) -> None:
        """Raise ``StorageUnavailable("blobs", ...)`` if the store cannot be used."""
        ...

    async def close(self) -> None:
        """Release connections and threads; the store must not be used afterwards."""
        ...


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is 64 lowercase hex characters; raise ``InvalidDigest`` otherwise."""
    if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
        raise InvalidDigest(str(digest))
    return digest


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(digest: str, data: bytes) -> bytes:
    """Return ``data`` if it hashes to ``digest``; raise ``BlobIntegrityError`` otherwise."""
    actual = digest_of(data)
    if actual != digest:
        raise BlobIntegrityError(digest, actual)
    return data
