"""The key-value port: rate limits, pub/sub and a small cache (Redis or in-process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["KeyValueStore", "RateLimitDecision", "check_rate_limit_args", "check_ttl"]


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """The outcome of one rate-limited attempt.

    ``remaining`` is how many more attempts the window admits after this one;
    ``retry_after_s`` is 0 when allowed, else the time until the next attempt can succeed.
    """

    allowed: bool
    remaining: int
    retry_after_s: float


@runtime_checkable
class KeyValueStore(Protocol):
    """Every backend passes tests/contract/test_kv_contract."""

    async def hit_rate_limit(self, key: str, *, limit: int, window_s: float) -> RateLimitDecision:
        """Count one attempt against ``key``: at most ``limit`` attempts per sliding ``window_s``.

        Atomic across processes sharing the backend. Denied attempts are not counted.
        """
        ...

    async def incr(self, key: str, *, ttl_s: float) -> int:
        """Add one to the counter at ``key`` (absent or expired: 0) and return the new value.

        Atomic across processes sharing the backend: N concurrent calls return 1..N exactly
        once each. Every call (re)sets the counter's expiry to ``ttl_s`` from now.
        """
        ...

    async def publish(self, channel: str, message: bytes) -> int:
        """Send ``message`` to current subscribers of ``channel``; return how many received it."""
        ...

    def subscribe(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Subscribe to ``channel`` for the duration of the ``async with`` block.

        The subscription is active when the block is entered: every message published
        afterwards is delivered, in publication order. Nothing is replayed or persisted. A
        subscription that breaks (the server restarted, a slow reader was dropped) raises
        ``StateError`` from the iterator; it never resumes silently past lost messages.
        """
        ...

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, or ``None`` if absent or expired."""
        ...

    async def set(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None:
        """Store ``value`` under ``key``, expiring after ``ttl_s`` seconds if given."""
        ...

    async def delete(self, key: str) -> bool:
        """Delete ``key``; return False if it did not exist."""
        ...

    async def ping(self) -> None:
        """Raise ``StorageUnavailable("redis", ...)`` if the store cannot be used."""
        ...

    async def close(self) -> None:
        """Release connections; the store must not be used afterwards."""
        ...


def check_rate_limit_args(limit: int, window_s: float) -> None:
    if limit < 1:
        raise ValueError(f"rate limit must be at least 1, got {limit}")
    if not window_s > 0:
        raise ValueError(f"rate limit window must be positive, got {window_s}")


def check_ttl(ttl_s: float | None) -> None:
    if ttl_s is not None and not ttl_s > 0:
        raise ValueError(f"ttl must be positive, got {ttl_s}")
