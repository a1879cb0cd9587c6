"""The key-value store on Redis (``redis.asyncio``).

Every key and channel is prefixed with ``key_prefix``, so several deployments (or test runs)
can share one Redis. Redis errors are translated in one place, ``_ERROR_TABLE``.

Reconnects: after Redis restarts, every pooled connection is dead, so a command retries once
on a fresh connection when its connection was closed (otherwise each stale connection would
fail one command: a lost publish is a realtime frame other replicas never see, after they
have already resubscribed and resynced). A subscription never reconnects on its own: messages
published while it was down are lost, so it ends with ``StorageUnavailable`` and the
subscriber resubscribes and catches up.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import redis.asyncio
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    RedisError,
    ResponseError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from state.errors import StorageUnavailable
from state.kv.protocol import RateLimitDecision, check_rate_limit_args, check_ttl

__all__ = ["RedisKeyValueStore"]

# First match wins. Redis errors never escape the adapter untranslated.
_ERROR_TABLE: tuple[tuple[type[Exception], str], ...] = (
    (AuthenticationError, "authentication failed"),
    (RedisTimeoutError, "timed out"),
    (RedisConnectionError, "connection failed"),
    (ResponseError, "command refused"),  # e.g. OOM, a read-only replica, a wrong key type
    (RedisError, "error"),
    (OSError, "connection failed"),
)

# A sliding-window log: a sorted set of the admitted hits, scored by server time in µs.
# KEYS[1] = the window's key; ARGV = limit, window in µs, a unique member for this hit.
_SLIDING_WINDOW_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return {1, limit - count - 1, 0}
end
local freeing = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
local retry = tonumber(freeing[2]) + window - now
if retry < 1 then retry = 1 end
return {0, 0, retry}
"""


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        what = next(text for cls, text in _ERROR_TABLE if isinstance(exc, cls))
        raise StorageUnavailable("redis", f"{what}: {type(exc).__name__}: {exc}") from exc


class _Subscription:
    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> bytes:
        while True:
            with _redis_errors():
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=None
                )
            if message is not None and message["type"] == "message":
                data: bytes = message["data"]
                return data


class RedisKeyValueStore:
    """Rate limits, pub/sub and cache entries on one Redis server."""

    def __init__(self, url: str, *, key_prefix: str = "", socket_timeout_s: float = 5.0) -> None:
        self.key_prefix = key_prefix
        # Closed connections only: a timed-out command may have run, and retrying it would
        # wait as long again.
        once_on_closed = Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,))
        self._client = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            health_check_interval=30,
            retry=once_on_closed,
        )
        # Subscriptions have their own pool, whose connections never retry: redis-py would
        # otherwise reconnect and resubscribe silently, hiding the messages lost in between.
        self._subscriber = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            health_check_interval=30,
        )
        self._sliding_window = self._client.register_script(_SLIDING_WINDOW_LUA)

    async def hit_rate_limit(self, key: str, *, limit: int, window_s: float) -> RateLimitDecision:
        check_rate_limit_args(limit, window_s)
        window_us = max(math.ceil(window_s * 1_000_000), 1)
        with _redis_errors():
            allowed, remaining, retry_us = await self._sliding_window(
                keys=[f"{self.key_prefix}ratelimit:{key}"],
                args=[limit, window_us, uuid.uuid4().hex],
            )
        return RateLimitDecision(bool(allowed), int(remaining), int(retry_us) / 1_000_000)

    async def incr(self, key: str, *, ttl_s: float) -> int:
        check_ttl(ttl_s)
        ttl_ms = max(math.ceil(ttl_s * 1000), 1)
        # INCR and PEXPIRE in one MULTI/EXEC: no other client's command runs in between.
        with _redis_errors():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.incr(self.key_prefix + key)
                pipe.pexpire(self.key_prefix + key, ttl_ms)
                count, _ = await pipe.execute()
        return int(count)

    async def publish(self, channel: str, message: bytes) -> int:
        with _redis_errors():
            receivers: int = await self._client.publish(self.key_prefix + channel, message)
        return receivers

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        pubsub = self._subscriber.pubsub()
        try:
            with _redis_errors():
                await pubsub.subscribe(self.key_prefix + channel)
                # Wait for the server's confirmation: only then are later publishes delivered.
                await self._await_confirmation(pubsub)
            yield _Subscription(pubsub)
        finally:
            # PubSub.aclose is unannotated in redis-py; give it its real type.
            close_pubsub: Callable[[], Awaitable[None]] = pubsub.aclose
            with _redis_errors():
                await close_pubsub()

    @staticmethod
    async def _await_confirmation(pubsub: PubSub) -> None:
        while True:
            # timeout=None blocks until the next event arrives.
            message = await pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "subscribe":
                return

    async def get(self, key: str) -> bytes | None:
        with _redis_errors():
            value = await self._client.get(self.key_prefix + key)
        # Values are bytes: the client never sets decode_responses.
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None:
        check_ttl(ttl_s)
        ttl_ms = None if ttl_s is None else max(math.ceil(ttl_s * 1000), 1)
        with _redis_errors():
            await self._client.set(self.key_prefix + key, value, px=ttl_ms)

    async def delete(self, key: str) -> bool:
        with _redis_errors():
            deleted: int = await self._client.delete(self.key_prefix + key)
        return deleted > 0

    async def ping(self) -> None:
        with _redis_errors():
            await self._client.ping()

    async def close(self) -> None:
        with _redis_errors():
            try:
                await self._client.aclose()
            finally:
                await self._subscriber.aclose()
