"""A document editor as the realtime hub sees it, and waiting for what it should receive."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Editor", "until_true"]


async def until_true(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async def wait() -> None:
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout_s)


class Editor:
    """A document client that keeps what it was sent."""

    def __init__(self, peer_id: str) -> None:
        self.peer_id, self.user_id = peer_id, "ada"
        self.received: list[bytes] = []

    def send(self, message: bytes) -> None:
        self.received.append(message)

    def kick(self, code: int, reason: str) -> None:
        self.received.append(f"kicked {code}".encode())
