"""Live collaboration: Yjs-compatible text documents (pycrdt), rooms, awareness, the y-protocols
wire format and a persistence protocol. No Ray, no HTTP, no other project package."""

from __future__ import annotations

from collab.awareness import (
    AwarenessEntry,
    AwarenessStates,
    decode_awareness,
    encode_awareness_update,
)
from collab.document import CONTENT, TextDocument, text_edits
from collab.errors import CollabError, MalformedMessage, SequenceTaken
from collab.persistence import DocumentStore, MemoryDocumentStore, StoredDocument
from collab.protocol import (
    ACK,
    AUTH,
    AWARENESS,
    SYNC,
    Message,
    SyncType,
    decode_message,
    encode_ack,
    encode_awareness,
    encode_permission_denied,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
)
from collab.rooms import Peer, Room, Rooms

__all__ = [
    "ACK",
    "AUTH",
    "AWARENESS",
    "CONTENT",
    "SYNC",
    "AwarenessEntry",
    "AwarenessStates",
    "CollabError",
    "DocumentStore",
    "MalformedMessage",
    "MemoryDocumentStore",
    "Message",
    "Peer",
    "Room",
    "Rooms",
    "SequenceTaken",
    "StoredDocument",
    "SyncType",
    "TextDocument",
    "decode_awareness",
    "decode_message",
    "encode_ack",
    "encode_awareness",
    "encode_awareness_update",
    "encode_permission_denied",
    "encode_sync_step1",
    "encode_sync_step2",
    "encode_update",
    "text_edits",
]
