"""Login brute-force protection with progressive delays that cannot lock the owner out.

Failed password attempts are counted in three places (the key-value store, so every replica
sees them, with a one-hour memory):

* per (email, ip): after ``PAIR_FREE`` failures each further attempt from that address at that
  account must wait 2^(n - free + 1) seconds (capped at 15 minutes) after the previous failure;
* per ip: after ``IP_FREE`` failures on any accounts, the same progression for the address;
* per email, over all addresses: after ``EMAIL_FREE`` failures the progression applies to
  addresses that have NOT signed in to this account successfully before.

An attacker who knows only the victim's email can slow down sign-ins from new places, but
never from an address where the owner signed in before (remembered for 90 days), and the
per-(email, ip) and per-ip counters only ever slow the attacker's own addresses down.
The check runs before the password is verified, so throttled attempts cost no argon2 time.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from accounts.errors import RateLimited
from state.kv import KeyValueStore

__all__ = ["LoginThrottle"]

PAIR_FREE = 5
IP_FREE = 30
EMAIL_FREE = 20
MAX_DELAY_S = 900.0
MEMORY_S = 3600.0
KNOWN_ADDRESS_S = 90 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class _Counter:
    failures: int
    last_failure: float

    def wait_s(self, free: int, now: float) -> float:
        if self.failures < free:
            return 0.0
        delay = min(2.0 ** (self.failures - free + 1), MAX_DELAY_S)
        return max(0.0, self.last_failure + delay - now)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class LoginThrottle:
    """Counts failures with the store's atomic ``incr``: concurrent failures are all counted.

    Each counter is two keys: ``<key>`` (the failure count) and ``<key>:last`` (the time of the
    latest failure, written before the count moves, so a reader never pairs a new count with
    a missing time).
    """

    def __init__(self, kv: KeyValueStore) -> None:
        self._kv = kv

    def _keys(self, email: str, ip: str) -> tuple[str, str, str, str]:
        account = _digest(email.strip().lower())
        return (
            f"login:fail:pair:{account}:{ip}",
            f"login:fail:ip:{ip}",
            f"login:fail:email:{account}",
            f"login:known:{account}:{ip}",
        )

    async def _read(self, key: str) -> _Counter:
        count = await self._kv.get(key)
        if count is None:
            return _Counter(0, 0.0)
        last = await self._kv.get(f"{key}:last")
        return _Counter(int(count), float(last) if last is not None else time.time())

    async def check(self, email: str, ip: str) -> None:
        """Raise ``RateLimited`` when this attempt must wait."""
        pair_key, ip_key, email_key, known_key = self._keys(email, ip)
        now = time.time()
        waits = [
            (await self._read(pair_key)).wait_s(PAIR_FREE, now),
            (await self._read(ip_key)).wait_s(IP_FREE, now),
        ]
        if await self._kv.get(known_key) is None:
            waits.append((await self._read(email_key)).wait_s(EMAIL_FREE, now))
        wait = max(waits)
        if wait > 0:
            raise RateLimited(wait, "Too many failed sign-in attempts; wait before trying again.")

    async def failure(self, email: str, ip: str) -> None:
        now = str(time.time()).encode()
        for key in self._keys(email, ip)[:3]:
            await self._kv.set(f"{key}:last", now, ttl_s=MEMORY_S)
            await self._kv.incr(key, ttl_s=MEMORY_S)

    async def success(self, email: str, ip: str) -> None:
        pair_key, _ip_key, email_key, known_key = self._keys(email, ip)
        for key in (pair_key, email_key):
            await self._kv.delete(key)
            await self._kv.delete(f"{key}:last")
        await self._kv.set(known_key, b"1", ttl_s=KNOWN_ADDRESS_S)
