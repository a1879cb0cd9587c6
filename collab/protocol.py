"""The y-protocols wire format (sync, awareness, auth), exactly as ``y-websocket`` frames it.

Every message starts with a varuint message type. ``sync`` (0) carries a varuint sub-type
(step 1: a state vector; step 2 and update: a document update) and a length-prefixed payload;
``awareness`` (1) carries one length-prefixed awareness update; ``auth`` (2) carries a varuint
sub-type (0 = permission denied) and a varstring reason. Varuints are little-endian base-128
(lib0's ``writeVarUint``); strings are UTF-8 with a varuint byte length.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from collab.errors import MalformedMessage

__all__ = [
    "ACK",
    "AUTH",
    "AWARENESS",
    "SYNC",
    "Message",
    "SyncType",
    "decode_message",
    "encode_ack",
    "encode_awareness",
    "encode_permission_denied",
    "encode_sync_step1",
    "encode_sync_step2",
    "encode_update",
    "read_var_uint",
    "write_var_uint",
]

SYNC = 0
AWARENESS = 1
AUTH = 2
# Not part of y-protocols: sent only to clients that ask for acknowledgements (``?ack=1``).
# Payload: a varuint count of update messages that are now durable.
ACK = 100
_PERMISSION_DENIED = 0
_MAX_VARUINT_BYTES = 10


class SyncType(enum.IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded message. ``sync_type`` is set for sync messages; ``payload`` holds the
    state vector (step 1), the update (step 2, update), the awareness update, the reason
    (auth, UTF-8) or the acknowledged count (ack, as a varuint)."""

    kind: int
    payload: bytes
    sync_type: SyncType | None = None


def write_var_uint(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"varuint must be non-negative, got {value}")
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def read_var_uint(data: bytes, offset: int) -> tuple[int, int]:
    """Return ``(value, next_offset)``; raise ``MalformedMessage`` if truncated or overlong."""
    value = shift = 0
    for index in range(offset, min(len(data), offset + _MAX_VARUINT_BYTES)):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, index + 1
        shift += 7
    raise MalformedMessage("truncated or overlong varuint")


def _var_bytes(payload: bytes) -> bytes:
    return write_var_uint(len(payload)) + payload


def _read_var_bytes(data: bytes, offset: int) -> tuple[bytes, int]:
    length, offset = read_var_uint(data, offset)
    end = offset + length
    if end > len(data):
        raise MalformedMessage("length prefix runs past the end of the message")
    return data[offset:end], end


def encode_sync_step1(state_vector: bytes) -> bytes:
    return bytes([SYNC, SyncType.STEP1]) + _var_bytes(state_vector)


def encode_sync_step2(update: bytes) -> bytes:
    return bytes([SYNC, SyncType.STEP2]) + _var_bytes(update)


def encode_update(update: bytes) -> bytes:
    return bytes([SYNC, SyncType.UPDATE]) + _var_bytes(update)


def encode_awareness(awareness_update: bytes) -> bytes:
    return bytes([AWARENESS]) + _var_bytes(awareness_update)


def encode_permission_denied(reason: str) -> bytes:
    return bytes([AUTH, _PERMISSION_DENIED]) + _var_bytes(reason.encode())


def encode_ack(count: int = 1) -> bytes:
    return bytes([ACK]) + write_var_uint(count)


def decode_message(data: bytes) -> Message:
    """Decode one message; unknown message types raise ``MalformedMessage``."""
    kind, offset = read_var_uint(data, 0)
    if kind == SYNC:
        raw_type, offset = read_var_uint(data, offset)
        try:
            sync_type = SyncType(raw_type)
        except ValueError:
            raise MalformedMessage(f"unknown sync message type {raw_type}") from None
        payload, _ = _read_var_bytes(data, offset)
        return Message(SYNC, payload, sync_type)
    if kind == AWARENESS:
        payload, _ = _read_var_bytes(data, offset)
        return Message(AWARENESS, payload)
    if kind == AUTH:
        _, offset = read_var_uint(data, offset)
        reason, _ = _read_var_bytes(data, offset)
        return Message(AUTH, reason)
    if kind == ACK:
        return Message(ACK, data[offset:])
    raise MalformedMessage(f"unknown message type {kind}")
