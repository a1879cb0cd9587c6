"""Revocation that takes effect on the next request, on every replica.

Checking a bearer credential reads the user, the sign-in and the API key from the database; a
replica keeps those answers for ``user_cache_ttl_s`` so that most requests need no query. To
keep a revocation (sign-out, password change, 2FA change, account deletion, API-key revocation)
from waiting out that cache, every user has a *revocation generation* in the shared key-value
store (Redis when configured, so all replicas see it): a revocation increments it, every
cached answer is stamped with the generation read *before* the database was, and an answer
whose stamp differs from the current generation is not used. That costs one key-value read per
authenticated request (the gateway already makes two for rate limits) and closes the race in
which a check that read the database just before a revocation caches the old answer.

What still waits out the cache, at most ``user_cache_ttl_s`` (5 s): changes written to the
database by other means (manual SQL; ``vibecode users make-admin`` when there is no Redis).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Generic, TypeVar

from state.kv import KeyValueStore

__all__ = ["Revocations", "StampedCache"]

T = TypeVar("T")

# A generation must outlive every answer stamped with it (at most user_cache_ttl_s): were it to
# expire and restart at 0, an answer stamped 0 before the first revocation would look current.
MIN_GENERATION_TTL_S = 24 * 3600.0


class Revocations:
    """Per-user revocation generations in the key-value store."""

    def __init__(self, kv: KeyValueStore, *, cache_ttl_s: float) -> None:
        self._kv = kv
        self._ttl_s = max(MIN_GENERATION_TTL_S, 100 * cache_ttl_s)

    @staticmethod
    def _key(user_id: str) -> str:
        return f"auth:revoked:{user_id}"

    async def generation(self, user_id: str) -> int:
        raw = await self._kv.get(self._key(user_id))
        return int(raw) if raw is not None else 0

    async def revoke(self, user_id: str) -> None:
        """Make every answer cached about ``user_id`` (on any replica) stale."""
        await self._kv.incr(self._key(user_id), ttl_s=self._ttl_s)


@dataclass(slots=True)
class _Entry(Generic[T]):
    deadline: float
    generation: int
    value: T


class StampedCache(Generic[T]):
    """A small TTL cache whose entries only count for the generation they were stamped with."""

    def __init__(self, ttl_s: float, *, max_entries: int = 100_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[str, _Entry[T]] = {}

    def get(self, key: str, generation: int) -> T | None:
        """The value, or None when absent, expired or stamped with another generation."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.deadline <= time.monotonic() or entry.generation != generation:
            del self._entries[key]
            return None
        return entry.value

    def put(self, key: str, generation: int, value: T) -> None:
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key] = _Entry(time.monotonic() + self._ttl_s, generation, value)

    def pop(self, key: str) -> None:
        self._entries.pop(key, None)
