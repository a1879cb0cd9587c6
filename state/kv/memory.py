"""The in-process key-value store: embedded mode (one process) and the fake for tests."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from state.errors import StorageUnavailable
from state.kv.protocol import RateLimitDecision, check_rate_limit_args, check_ttl

__all__ = ["MemoryKeyValueStore"]

# Expired entries are dropped when read, and all of them every this many operations.
_SWEEP_EVERY_OPS = 1024


@dataclass
class _Window:
    window_s: float
    hits: deque[float] = field(default_factory=deque)


class _Subscriber:
    def __init__(self, max_buffered: int) -> None:
        self.send: MemoryObjectSendStream[bytes]
        self.receive: MemoryObjectReceiveStream[bytes]
        self.send, self.receive = anyio.create_memory_object_stream[bytes](max_buffered)
        self.overflowed = False

    def __aiter__(self) -> _Subscriber:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self.overflowed:
                raise StorageUnavailable("kv", "subscriber fell behind and was dropped") from None
            raise StopAsyncIteration from None


class MemoryKeyValueStore:
    """Everything in this process's memory; the semantics match the Redis backend.

    A subscriber that falls ``max_buffered_messages`` behind is dropped (like Redis does with
    slow pub/sub clients): its iterator then raises ``StorageUnavailable``.
    """

    def __init__(
        self,
        *,
        max_buffered_messages: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._values: dict[str, tuple[bytes, float | None]] = {}
        self._windows: dict[str, _Window] = {}
        self._channels: dict[str, set[_Subscriber]] = {}
        self._max_buffered = max_buffered_messages
        self._clock = clock
        self._ops = 0

    async def hit_rate_limit(self, key: str, *, limit: int, window_s: float) -> RateLimitDecision:
        check_rate_limit_args(limit, window_s)
        now = self._tick()
        window = self._windows.setdefault(key, _Window(window_s))
        window.window_s = window_s
        _trim(window, now)
        if len(window.hits) < limit:
            window.hits.append(now)
            return RateLimitDecision(True, limit - len(window.hits), 0.0)
        oldest = window.hits[len(window.hits) - limit]
        return RateLimitDecision(False, 0, max(oldest + window_s - now, 0.001))

    async def incr(self, key: str, *, ttl_s: float) -> int:
        # No await between the read and the write: atomic under asyncio.
        check_ttl(ttl_s)
        now = self._tick()
        entry = self._values.get(key)
        count = 0
        if entry is not None and (entry[1] is None or entry[1] > now):
            count = int(entry[0])
        count += 1
        self._values[key] = (str(count).encode(), now + ttl_s)
        return count

    async def publish(self, channel: str, message: bytes) -> int:
        self._tick()
        delivered = 0
        for subscriber in list(self._channels.get(channel, ())):
            try:
                subscriber.send.send_nowait(bytes(message))
            except anyio.WouldBlock:
                subscriber.overflowed = True
                subscriber.send.close()
                self._unsubscribe(channel, subscriber)
            else:
                delivered += 1
        return delivered

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[bytes]]:
        subscriber = _Subscriber(self._max_buffered)
        self._channels.setdefault(channel, set()).add(subscriber)
        try:
            yield subscriber
        finally:
            self._unsubscribe(channel, subscriber)
            subscriber.send.close()
            subscriber.receive.close()

    async def get(self, key: str) -> bytes | None:
        now = self._tick()
        entry = self._values.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at is not None and expires_at <= now:
            del self._values[key]
            return None
        return value

    async def set(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None:
        check_ttl(ttl_s)
        now = self._tick()
        self._values[key] = (bytes(value), None if ttl_s is None else now + ttl_s)

    async def delete(self, key: str) -> bool:
        present = await self.get(key) is not None
        self._values.pop(key, None)
        return present

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        for channel, subscribers in list(self._channels.items()):
            for subscriber in list(subscribers):
                subscriber.send.close()
                self._unsubscribe(channel, subscriber)

    def _unsubscribe(self, channel: str, subscriber: _Subscriber) -> None:
        subscribers = self._channels.get(channel)
        if subscribers is None:
            return
        subscribers.discard(subscriber)
        if not subscribers:
            del self._channels[channel]

    def _tick(self) -> float:
        now = self._clock()
        self._ops += 1
        if self._ops % _SWEEP_EVERY_OPS == 0:
            self._sweep(now)
        return now

    def _sweep(self, now: float) -> None:
        for key, (_, expires_at) in list(self._values.items()):
            if expires_at is not None and expires_at <= now:
                del self._values[key]
        for key, window in list(self._windows.items()):
            _trim(window, now)
            if not window.hits:
                del self._windows[key]


def _trim(window: _Window, now: float) -> None:
    while window.hits and window.hits[0] <= now - window.window_s:
        window.hits.popleft()
