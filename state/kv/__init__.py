"""Key-value services: rate limits, pub/sub and a cache, on Redis or in-process."""

from __future__ import annotations

from state.kv.memory import MemoryKeyValueStore
from state.kv.protocol import KeyValueStore, RateLimitDecision
from state.settings import RedisSettings

__all__ = ["KeyValueStore", "MemoryKeyValueStore", "RateLimitDecision", "open_kv"]


def open_kv(settings: RedisSettings, *, key_prefix: str = "") -> KeyValueStore:
    """Redis when ``settings.url`` is set, else the in-process store (one process only)."""
    if settings.url is None:
        return MemoryKeyValueStore()
    from state.kv.redis import RedisKeyValueStore

    return RedisKeyValueStore(
        settings.url, key_prefix=key_prefix, socket_timeout_s=settings.socket_timeout_s
    )
