"""Awareness: who is in a document and where their cursors and selections are (ephemeral).

An awareness update is ``varuint(n)`` then, per client, ``varuint(client_id) varuint(clock)
varstring(json state)``; a state of ``null`` means the client left. A newer clock wins, as in
y-protocols' ``applyAwarenessUpdate``. Nothing here is persisted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from collab.errors import MalformedMessage
from collab.protocol import read_var_uint, write_var_uint

__all__ = ["AwarenessEntry", "AwarenessStates", "decode_awareness", "encode_awareness_update"]


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    client_id: int
    clock: int
    # None: the client left. Otherwise the JSON state (``{"user": ..., "cursor": ...}``).
    state: dict[str, Any] | None


def encode_awareness_update(entries: list[AwarenessEntry]) -> bytes:
    out = bytearray(write_var_uint(len(entries)))
    for entry in entries:
        state = json.dumps(entry.state, separators=(",", ":")).encode()
        out += write_var_uint(entry.client_id) + write_var_uint(entry.clock)
        out += write_var_uint(len(state)) + state
    return bytes(out)


def decode_awareness(data: bytes) -> list[AwarenessEntry]:
    count, offset = read_var_uint(data, 0)
    entries: list[AwarenessEntry] = []
    for _ in range(count):
        client_id, offset = read_var_uint(data, offset)
        clock, offset = read_var_uint(data, offset)
        length, offset = read_var_uint(data, offset)
        raw = data[offset : offset + length]
        if len(raw) != length:
            raise MalformedMessage("awareness state runs past the end of the message")
        offset += length
        try:
            state = json.loads(raw)
        except ValueError as exc:
            raise MalformedMessage(f"awareness state is not JSON: {exc}") from None
        if state is not None and not isinstance(state, dict):
            raise MalformedMessage("awareness state must be an object or null")
        entries.append(AwarenessEntry(client_id, clock, state))
    return entries


class AwarenessStates:
    """The current awareness of one document, merged from many clients' updates."""

    def __init__(self) -> None:
        self._entries: dict[int, AwarenessEntry] = {}

    def apply(self, update: bytes) -> list[AwarenessEntry]:
        """Merge ``update``; return the entries that changed something (newer clocks)."""
        changed: list[AwarenessEntry] = []
        for entry in decode_awareness(update):
            current = self._entries.get(entry.client_id)
            if current is not None and entry.clock < current.clock:
                continue
            if current is not None and entry.clock == current.clock and entry.state is not None:
                continue
            if entry.state is None:
                if current is None:
                    continue
                self._entries.pop(entry.client_id, None)
            else:
                self._entries[entry.client_id] = entry
            changed.append(entry)
        return changed

    def states(self) -> dict[int, dict[str, Any]]:
        return {cid: e.state for cid, e in self._entries.items() if e.state is not None}

    def encode(self) -> bytes:
        """Every known state as one update (sent to a client that just joined)."""
        return encode_awareness_update(list(self._entries.values()))

    def remove(self, client_ids: set[int]) -> bytes | None:
        """Forget ``client_ids`` (their connection closed); return the update telling others."""
        gone = [self._entries.pop(cid) for cid in client_ids if cid in self._entries]
        if not gone:
            return None
        return encode_awareness_update(
            [AwarenessEntry(e.client_id, e.clock + 1, None) for e in gone]
        )

    def __len__(self) -> int:
        return len(self._entries)
