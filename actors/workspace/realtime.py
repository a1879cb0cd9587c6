"""The realtime channel every gateway replica listens to: document messages and workspace events.

Owners of state (workspace hosts, agent runs) and gateway replicas publish here; each replica
delivers what it receives to its own connected clients. One pub/sub channel (``realtime``) on the
key-value store: Redis across processes, in-process in embedded mode. A frame is one byte of kind,
a varuint-prefixed JSON header and the payload.

``EventPublisher.publish(workspace_id, event, data)`` is the port for workspace events (file-tree
changes, agent events): replicas emit them to the workspace's Socket.IO room.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from collab.protocol import read_var_uint, write_var_uint
from state.kv import KeyValueStore

__all__ = [
    "CHANNEL",
    "DOC",
    "EVENT",
    "PING",
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
    """Publishes frames on the key-value store's pub/sub (fire and forget: nothing is stored)."""

    def __init__(self, kv: KeyValueStore, *, origin: str | None = None) -> None:
        self.kv = kv
        self.origin = origin or uuid.uuid4().hex

    async def broadcast(self, workspace_id: str, path: str, message: bytes) -> None:
        """Deliver a document message to every client of the document (the ``Broadcast`` hook)."""
        await self.kv.publish(
            CHANNEL, encode_frame(Frame(DOC, self.origin, workspace_id, message, path=path))
        )

    async def publish(self, workspace_id: str, event: str, data: dict[str, Any]) -> None:
        payload = json.dumps(data, separators=(",", ":"), default=str).encode()
        await self.kv.publish(
            CHANNEL, encode_frame(Frame(EVENT, self.origin, workspace_id, payload, event=event))
        )
