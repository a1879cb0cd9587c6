"""Login throttling under concurrency: every failure counts, on Redis and in-process.

Concurrent failed sign-ins (many replicas, many connections) must each move the counters: a
lost update would hand an attacker free guesses. The progressive delay the next attempt gets
says how many failures were counted (2^(n - free + 1) seconds once n reaches the free quota).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from accounts.errors import RateLimited
from accounts.throttle import EMAIL_FREE, IP_FREE, PAIR_FREE, LoginThrottle
from state.kv import KeyValueStore, open_kv
from state.settings import RedisSettings

EXTRA = 3  # failures past the free quota: the wait is then 2^(EXTRA + 1) = 16 s
EXPECTED_WAIT_S = 2.0 ** (EXTRA + 1)


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[list[KeyValueStore]]:
    """Several clients of one store, as several gateway replicas would hold."""
    if request.param == "memory":
        shared = open_kv(RedisSettings(url=None))
        clients = [shared] * 4
    else:
        url: str = request.getfixturevalue("redis_url")
        prefix: str = request.getfixturevalue("redis_key_prefix")
        clients = [open_kv(RedisSettings(url=url), key_prefix=prefix) for _ in range(4)]
    try:
        yield clients
    finally:
        for client in set(clients):
            await client.close()


async def _wait_s(throttle: LoginThrottle, email: str, ip: str) -> float:
    try:
        await throttle.check(email, ip)
    except RateLimited as limited:
        return limited.retry_after_s
    return 0.0


async def test_concurrent_failures_at_one_account_are_all_counted(
    stores: list[KeyValueStore],
) -> None:
    throttles = [LoginThrottle(kv) for kv in stores]
    failures = PAIR_FREE + EXTRA
    await asyncio.gather(
        *(throttles[i % 4].failure("ada@example.com", "203.0.113.9") for i in range(failures))
    )

    wait = await _wait_s(throttles[0], "ada@example.com", "203.0.113.9")

    # One lost count would halve the wait (8 s); one extra would double it.
    assert EXPECTED_WAIT_S - 3 < wait <= EXPECTED_WAIT_S


async def test_concurrent_failures_from_one_address_are_all_counted(
    stores: list[KeyValueStore],
) -> None:
    throttles = [LoginThrottle(kv) for kv in stores]
    failures = IP_FREE + EXTRA
    await asyncio.gather(
        *(throttles[i % 4].failure(f"user{i}@example.com", "198.51.100.4") for i in range(failures))
    )

    # A fresh account at that address: only the per-address counter applies.
    wait = await _wait_s(throttles[1], "someone-else@example.com", "198.51.100.4")

    assert EXPECTED_WAIT_S - 3 < wait <= EXPECTED_WAIT_S
    assert await _wait_s(throttles[1], "someone-else@example.com", "198.51.100.5") == 0.0


async def test_concurrent_failures_at_one_email_from_many_addresses_are_all_counted(
    stores: list[KeyValueStore],
) -> None:
    throttles = [LoginThrottle(kv) for kv in stores]
    await throttles[0].success("owner@example.com", "192.0.2.1")  # the owner's usual address
    failures = EMAIL_FREE + EXTRA
    await asyncio.gather(
        *(throttles[i % 4].failure("owner@example.com", f"203.0.113.{i}") for i in range(failures))
    )

    wait = await _wait_s(throttles[2], "owner@example.com", "203.0.113.200")

    assert EXPECTED_WAIT_S - 3 < wait <= EXPECTED_WAIT_S
    # The owner, from where they signed in before, is not slowed down.
    assert await _wait_s(throttles[2], "owner@example.com", "192.0.2.1") == 0.0
