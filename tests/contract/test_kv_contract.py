"""One behaviour contract for every KeyValueStore backend: in-process, a real Redis, and the
kv-bus actor that carries the realtime channel across a Ray cluster's processes without Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from state.errors import StorageUnavailable
from state.kv import KeyValueStore, MemoryKeyValueStore, open_kv
from state.kv.redis import RedisKeyValueStore
from state.settings import RedisSettings

WINDOW_S = 0.3


@pytest.fixture(params=["memory", "redis", "ray"])
async def kv(request: pytest.FixtureRequest) -> AsyncIterator[KeyValueStore]:
    store: KeyValueStore
    bus_namespace: str | None = None
    if request.param == "memory":
        store = open_kv(RedisSettings(url=None))
        assert isinstance(store, MemoryKeyValueStore)
    elif request.param == "ray":
        from actors.kv_bus import open_cluster_kv
        from tests.harness.run import next_name

        request.getfixturevalue("ray_address")
        bus_namespace = f"kv-{next_name()}"  # a bus of its own
        store = open_cluster_kv(RedisSettings(url=None), namespace=bus_namespace)
    else:
        url: str = request.getfixturevalue("redis_url")
        prefix: str = request.getfixturevalue("redis_key_prefix")
        store = open_kv(RedisSettings(url=url), key_prefix=prefix)
        assert isinstance(store, RedisKeyValueStore)
    try:
        await store.ping()
        yield store
    finally:
        await store.close()
        if bus_namespace is not None:
            import ray

            from actors.kv_bus import BUS_NAME

            ray.kill(ray.get_actor(BUS_NAME, namespace=bus_namespace))


async def test_rate_limit_allows_limit_then_denies_then_recovers(kv: KeyValueStore) -> None:
    decisions = [
        await kv.hit_rate_limit("login:alice", limit=3, window_s=WINDOW_S) for _ in range(3)
    ]
    assert [(d.allowed, d.remaining) for d in decisions] == [(True, 2), (True, 1), (True, 0)]
    assert all(d.retry_after_s == 0 for d in decisions)

    denied = await kv.hit_rate_limit("login:alice", limit=3, window_s=WINDOW_S)
    assert not denied.allowed
    assert denied.remaining == 0
    assert 0 < denied.retry_after_s <= WINDOW_S

    await asyncio.sleep(denied.retry_after_s + 0.05)
    again = await kv.hit_rate_limit("login:alice", limit=3, window_s=WINDOW_S)
    assert again.allowed


async def test_rate_limits_are_per_key(kv: KeyValueStore) -> None:
    assert (await kv.hit_rate_limit("ip:1", limit=1, window_s=10)).allowed
    assert not (await kv.hit_rate_limit("ip:1", limit=1, window_s=10)).allowed
    assert (await kv.hit_rate_limit("ip:2", limit=1, window_s=10)).allowed


async def test_concurrent_hits_never_exceed_the_limit(kv: KeyValueStore) -> None:
    decisions = await asyncio.gather(
        *(kv.hit_rate_limit("burst", limit=5, window_s=10) for _ in range(20))
    )
    assert sum(d.allowed for d in decisions) == 5


async def test_rate_limit_rejects_nonsense_arguments(kv: KeyValueStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        await kv.hit_rate_limit("k", limit=0, window_s=1)
    with pytest.raises(ValueError, match="window"):
        await kv.hit_rate_limit("k", limit=1, window_s=0)


async def test_pubsub_delivers_to_every_subscriber_in_order(kv: KeyValueStore) -> None:
    messages = [f"event {i}".encode() for i in range(20)] + [b"", b"\x00\xff binary"]

    async with kv.subscribe("workspace:1") as first, kv.subscribe("workspace:1") as second:
        for message in messages:
            assert await kv.publish("workspace:1", message) == 2

        for subscription in (first, second):
            received = [await asyncio.wait_for(anext(subscription), 5) for _ in messages]
            assert received == messages


async def test_pubsub_only_delivers_the_subscribed_channel(kv: KeyValueStore) -> None:
    async with kv.subscribe("a") as subscription:
        assert await kv.publish("b", b"not for a") == 0
        await kv.publish("a", b"for a")

        assert await asyncio.wait_for(anext(subscription), 5) == b"for a"


async def test_publish_without_subscribers_reaches_nobody(kv: KeyValueStore) -> None:
    async with kv.subscribe("gone"):
        pass
    assert await kv.publish("gone", b"lost") == 0


async def test_set_get_delete(kv: KeyValueStore) -> None:
    assert await kv.get("missing") is None
    await kv.set("greeting", b"hello")
    assert await kv.get("greeting") == b"hello"
    await kv.set("greeting", b"\x00binary\xff")
    assert await kv.get("greeting") == b"\x00binary\xff"

    assert await kv.delete("greeting") is True
    assert await kv.delete("greeting") is False
    assert await kv.get("greeting") is None


async def test_values_expire_after_their_ttl(kv: KeyValueStore) -> None:
    await kv.set("session", b"v", ttl_s=0.2)
    await kv.set("forever", b"v")
    assert await kv.get("session") == b"v"

    await asyncio.sleep(0.35)

    assert await kv.get("session") is None
    assert await kv.delete("session") is False
    assert await kv.get("forever") == b"v"


async def test_ttl_must_be_positive(kv: KeyValueStore) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await kv.set("k", b"v", ttl_s=0)
    with pytest.raises(ValueError, match="ttl"):
        await kv.incr("k", ttl_s=0)


async def test_incr_counts_from_one_and_expires(kv: KeyValueStore) -> None:
    assert [await kv.incr("failures", ttl_s=0.3) for _ in range(3)] == [1, 2, 3]
    assert await kv.get("failures") == b"3"
    assert await kv.incr("other", ttl_s=10) == 1

    await asyncio.sleep(0.45)

    assert await kv.get("failures") is None
    assert await kv.incr("failures", ttl_s=10) == 1


async def test_concurrent_incr_loses_no_count(kv: KeyValueStore) -> None:
    counts = await asyncio.gather(*(kv.incr("hammered", ttl_s=30) for _ in range(64)))
    assert sorted(counts) == list(range(1, 65))
    assert await kv.get("hammered") == b"64"


# --- Backend-specific ------------------------------------------------------------------------


async def test_unreachable_redis_is_storage_unavailable() -> None:
    from tests.harness.processes import free_port

    store = RedisKeyValueStore(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=1)
    try:
        with pytest.raises(StorageUnavailable) as caught:
            await store.ping()
        assert caught.value.part == "redis"
    finally:
        await store.close()


async def test_redis_keys_live_under_the_prefix(redis_url: str, redis_key_prefix: str) -> None:
    import redis.asyncio

    store = RedisKeyValueStore(redis_url, key_prefix=redis_key_prefix)
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        await store.set("k", b"v")
        await store.hit_rate_limit("r", limit=1, window_s=10)

        keys = sorted([key async for key in raw.scan_iter(match=f"{redis_key_prefix}*")])

        assert keys == [f"{redis_key_prefix}k".encode(), f"{redis_key_prefix}ratelimit:r".encode()]
    finally:
        await raw.aclose()
        await store.close()


async def test_incr_is_atomic_across_redis_clients(redis_url: str, redis_key_prefix: str) -> None:
    clients = [RedisKeyValueStore(redis_url, key_prefix=redis_key_prefix) for _ in range(4)]
    try:
        counts = await asyncio.gather(
            *(client.incr("shared", ttl_s=30) for client in clients for _ in range(64))
        )
        assert sorted(counts) == list(range(1, 257))
        assert await clients[0].get("shared") == b"256"
    finally:
        for client in clients:
            await client.close()


@pytest.fixture
def own_redis_url() -> Iterator[str]:
    """A Redis of the test's own: the tests using it cut every client's connections."""
    from tests.harness.redis_server import start_throwaway_redis
    from tests.harness.run import next_name

    try:
        server = start_throwaway_redis(next_name())
    except FileNotFoundError as exc:
        pytest.skip(f"no redis-server: {exc}")
    try:
        yield server.url
    finally:
        server.close()


async def test_publishes_right_after_redis_dropped_every_connection_are_delivered(
    own_redis_url: str,
) -> None:
    # What a Redis restart does to the pool: every idle connection is dead. Each one failing its
    # next publish would lose realtime frames after the other replicas had already resynced.
    import redis.asyncio

    store = RedisKeyValueStore(own_redis_url)
    admin = redis.asyncio.Redis.from_url(own_redis_url)
    try:
        async with store.subscribe("c") as subscription:
            # Concurrent publishes leave several connections in the pool.
            assert (
                await asyncio.gather(*(store.publish("c", b"before") for _ in range(4))) == [1] * 4
            )
            for _ in range(4):
                assert await asyncio.wait_for(anext(subscription), 5) == b"before"

            await admin.client_kill_filter(_type="normal")  # not the subscription, not admin

            received = await asyncio.gather(*(store.publish("c", b"after") for _ in range(4)))
            assert received == [1] * 4
            for _ in range(4):
                assert await asyncio.wait_for(anext(subscription), 5) == b"after"
            await store.set("k", b"v")
            assert await store.get("k") == b"v"
    finally:
        await admin.aclose()
        await store.close()


async def test_a_subscription_cut_by_redis_ends_with_an_error_never_resumes_silently(
    own_redis_url: str,
) -> None:
    # Messages published while it was cut are gone: the subscriber must learn it, to catch up.
    import redis.asyncio

    store = RedisKeyValueStore(own_redis_url)
    admin = redis.asyncio.Redis.from_url(own_redis_url)
    try:
        async with store.subscribe("c") as subscription:
            assert await store.publish("c", b"before") == 1
            assert await asyncio.wait_for(anext(subscription), 5) == b"before"

            await admin.client_kill_filter(_type="pubsub")
            await store.publish("c", b"after")

            with pytest.raises(StorageUnavailable):
                await asyncio.wait_for(anext(subscription), 5)
    finally:
        await admin.aclose()
        await store.close()


async def test_slow_in_process_subscriber_is_dropped_not_buffered_forever() -> None:
    store = MemoryKeyValueStore(max_buffered_messages=2)
    async with store.subscribe("c") as subscription:
        assert [await store.publish("c", b"m") for _ in range(3)] == [1, 1, 0]

        assert await anext(subscription) == b"m"
        assert await anext(subscription) == b"m"
        with pytest.raises(StorageUnavailable):
            await anext(subscription)
