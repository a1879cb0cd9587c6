"""The key-value port across a Ray cluster's processes when no Redis is configured.

In embedded mode `vibecode up` still runs gateway replicas, workspace hosts and agent hosts as
separate Ray processes, so an in-process store cannot carry a host's "this file changed" or an
agent's events to the replica holding the browser's socket. ``kv-bus`` is one named detached
actor holding a ``MemoryKeyValueStore``; ``RayKeyValueStore`` speaks the ``KeyValueStore`` port
to it (subscriptions are streaming generator calls). It is the realtime channel's transport, not
a database: like Redis pub/sub it keeps nothing; if it restarts, subscribers see the channel
drop and resubscribe (the realtime hub then resyncs its documents). Production uses Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import ActorUnavailableError, RayActorError

from actors.platform import platform_actor_options
from state.errors import StorageUnavailable
from state.kv import KeyValueStore, RateLimitDecision, open_kv
from state.kv.memory import MemoryKeyValueStore
from state.settings import RedisSettings

__all__ = ["BUS_NAME", "KvBusShell", "RayKeyValueStore", "open_cluster_kv"]

BUS_NAME = "kv-bus:0"
BUS_MAX_CONCURRENCY = 10_000  # every replica's and host's subscription is one open call
_READY = b""  # first item of a subscription: it is active from here on


class KvBusShell:
    """The actor: a ``MemoryKeyValueStore`` shared by every process of the cluster."""

    def __init__(self) -> None:
        self._store = MemoryKeyValueStore(max_buffered_messages=10_000)

    async def hit_rate_limit(self, key: str, limit: int, window_s: float) -> RateLimitDecision:
        return await self._store.hit_rate_limit(key, limit=limit, window_s=window_s)

    async def incr(self, key: str, ttl_s: float) -> int:
        return await self._store.incr(key, ttl_s=ttl_s)

    async def publish(self, channel: str, message: bytes) -> int:
        return await self._store.publish(channel, message)

    async def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        async with self._store.subscribe(channel) as messages:
            yield _READY
            async for message in messages:
                yield message

    async def get(self, key: str) -> bytes | None:
        return await self._store.get(key)

    async def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        await self._store.set(key, value, ttl_s=ttl_s)

    async def delete(self, key: str) -> bool:
        return await self._store.delete(key)


KvBus = ray.remote(KvBusShell)


class RayKeyValueStore:
    """``KeyValueStore`` over the ``kv-bus`` actor of ``namespace`` (created on first use)."""

    def __init__(self, namespace: str | None) -> None:
        self._handle: ActorHandle[KvBusShell] = KvBus.options(  # type: ignore[assignment]
            **platform_actor_options(
                BUS_NAME, namespace=namespace, max_concurrency=BUS_MAX_CONCURRENCY
            )
        ).remote()

    async def _call(self, method: str, *args: object) -> object:
        try:
            return await getattr(self._handle, method).remote(*args)
        except (RayActorError, ActorUnavailableError) as exc:
            raise StorageUnavailable("kv", f"the kv-bus actor is unavailable: {exc}") from exc

    async def hit_rate_limit(self, key: str, *, limit: int, window_s: float) -> RateLimitDecision:
        decision = await self._call("hit_rate_limit", key, limit, window_s)
        assert isinstance(decision, RateLimitDecision)
        return decision

    async def incr(self, key: str, *, ttl_s: float) -> int:
        value = await self._call("incr", key, ttl_s)
        assert isinstance(value, int)
        return value

    async def publish(self, channel: str, message: bytes) -> int:
        received = await self._call("publish", channel, message)
        assert isinstance(received, int)
        return received

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        stream: Any = self._handle.subscribe.options(num_returns="streaming").remote(channel)
        try:
            ready = await (await anext(stream))
            assert ready == _READY

            async def messages() -> AsyncIterator[bytes]:
                try:
                    async for ref in stream:
                        yield await ref
                except (RayActorError, ActorUnavailableError) as exc:
                    raise StorageUnavailable("kv", f"the kv-bus subscription ended: {exc}") from exc
                raise StorageUnavailable("kv", "the kv-bus subscription ended")

            yield messages()
        except (RayActorError, ActorUnavailableError, StopAsyncIteration) as exc:
            raise StorageUnavailable("kv", f"cannot subscribe on the kv-bus: {exc}") from exc
        finally:
            ray.cancel(stream)

    async def get(self, key: str) -> bytes | None:
        value = await self._call("get", key)
        assert value is None or isinstance(value, bytes)
        return value

    async def set(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None:
        await self._call("set", key, value, ttl_s)

    async def delete(self, key: str) -> bool:
        deleted = await self._call("delete", key)
        assert isinstance(deleted, bool)
        return deleted

    async def ping(self) -> None:
        await self._call("get", "ping")

    async def close(self) -> None:
        return None


def open_cluster_kv(settings: RedisSettings, *, namespace: str | None) -> KeyValueStore:
    """Redis when configured; otherwise the cluster's ``kv-bus`` actor (never per process)."""
    if settings.url is not None:
        return open_kv(settings)
    return RayKeyValueStore(namespace)
