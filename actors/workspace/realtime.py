"""The realtime channel every gateway replica listens to: document messages and workspace events.

Owners of state (workspace hosts, agent runs) and gateway replicas publish here; each replica
delivers what it receives to its own connected clients. One pub/sub channel (``realtime``) on the
key-value store: Redis across processes, in-process in embedded mode. A frame is one byte of kind,
a varuint-prefixed JSON header and the payload.

``EventPublisher.publish(workspace_id, event, data)`` is the port for workspace events (file-tree
changes, agent events): replicas emit them to the workspace's Socket.IO room.

A document frame that cannot be published (Redis is down) is lost for the other replicas'
clients, and the Yjs updates after it then wait forever for the missing one. The publisher
remembers the document and, in the background, announces it as ``STALE`` until an announcement
gets through; every replica with clients of that document resyncs them from its owner. (A
replica whose own subscription dropped resyncs every document anyway.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from collab.protocol import read_var_uint, write_var_uint
from state.errors import StateError
from state.kv import KeyValueStore

__all__ = [
    "CHANNEL",
    "DOC",
    "EVENT",
    "PING",
    "STALE",
    "EventPublisher",
    "Frame",
    "KvRealtime",
    "Realtime",
    "decode_frame",
    "encode_frame",
]

CHANNEL = "realtime"
DOC = 0  # payload: a y-protocols message for every client of (workspace, path)
EVENT = 1  # payload: JSON data of event ``event`` for the workspace's room
PING = 2  # a replica's liveness probe of its own subscription
STALE = 3  # no payload: frames of document (workspace, path) were lost; resync its clients

log = structlog.get_logger("realtime")

# Between attempts to announce documents whose frames were lost: doubling, capped.
ANNOUNCE_FIRST_RETRY_S = 0.1
ANNOUNCE_MAX_RETRY_S = 2.0


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int
    origin: str
    workspace_id: str
    payload: bytes
    path: str = ""
    event: str = ""
    # A peer of the origin that already has the message (it sent it).
    skip: str = ""


def encode_frame(frame: Frame) -> bytes:
    header = json.dumps(
        {
            "o": frame.origin,
            "w": frame.workspace_id,
            "p": frame.path,
            "e": frame.event,
            "s": frame.skip,
        },
        separators=(",", ":"),
    ).encode()
    return bytes([frame.kind]) + write_var_uint(len(header)) + header + frame.payload


def decode_frame(data: bytes) -> Frame:
    length, offset = read_var_uint(data, 1)
    header = json.loads(data[offset : offset + length])
    return Frame(
        kind=data[0],
        origin=header["o"],
        workspace_id=header["w"],
        payload=data[offset + length :],
        path=header["p"],
        event=header["e"],
        skip=header["s"],
    )


class Realtime(Protocol):
    """What a workspace host publishes: document messages and workspace events."""

    async def broadcast(self, workspace_id: str, path: str, message: bytes) -> None: ...

    async def publish(self, workspace_id: str, event: str, data: dict[str, Any]) -> None: ...


class EventPublisher(Protocol):
    async def publish(self, workspace_id: str, event: str, data: dict[str, Any]) -> None:
        """Send ``event`` to every client in the workspace's room, on every replica."""
        ...


class KvRealtime:
    """Publishes frames on the key-value store's pub/sub (fire and forget: nothing is stored),
    and announces the documents whose frames it could not publish once the channel is back."""

    def __init__(self, kv: KeyValueStore, *, origin: str | None = None) -> None:
        self.kv = kv
        self.origin = origin or uuid.uuid4().hex
        # Documents whose frames were lost and that no replica has been told about yet.
        self._stale: set[tuple[str, str]] = set()
        self._announcer: asyncio.Task[None] | None = None

    async def broadcast(
        self, workspace_id: str, path: str, message: bytes, *, skip: str = ""
    ) -> None:
        """Deliver a document message to every client of the document (the ``Broadcast`` hook).

        Raises ``StateError`` when the channel is down; the document is then announced as stale
        in the background, so no replica's clients stay behind."""
        frame = Frame(DOC, self.origin, workspace_id, message, path=path, skip=skip)
        try:
            await self.kv.publish(CHANNEL, encode_frame(frame))
        except StateError:
            self._stale.add((workspace_id, path))
            if self._announcer is None or self._announcer.done():
                self._announcer = asyncio.get_running_loop().create_task(
                    self._announce_stale(), name="realtime-announce-stale"
                )
            raise

    async def publish(self, workspace_id: str, event: str, data: dict[str, Any]) -> None:
        payload = json.dumps(data, separators=(",", ":"), default=str).encode()
        await self.kv.publish(
            CHANNEL, encode_frame(Frame(EVENT, self.origin, workspace_id, payload, event=event))
        )

    @property
    def stale(self) -> set[tuple[str, str]]:
        """The documents still to be announced (a copy)."""
        return set(self._stale)

    async def aclose(self) -> None:
        """Stop announcing (what is still unannounced stays unannounced)."""
        if self._announcer is not None:
            self._announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._announcer
            self._announcer = None

    async def _announce_stale(self) -> None:
        delay_s = ANNOUNCE_FIRST_RETRY_S
        while self._stale:
            await asyncio.sleep(delay_s)
            for workspace_id, path in list(self._stale):
                frame = Frame(STALE, self.origin, workspace_id, b"", path=path)
                try:
                    await self.kv.publish(CHANNEL, encode_frame(frame))
                except StateError as exc:
                    log.warning("realtime.announce_failed", error=str(exc), retry_in_s=delay_s)
                    break
                self._stale.discard((workspace_id, path))
                log.info("realtime.stale_announced", workspace_id=workspace_id, path=path)
            delay_s = min(delay_s * 2, ANNOUNCE_MAX_RETRY_S)
