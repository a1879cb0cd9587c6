"""How live documents survive: a snapshot plus the updates appended after it.

``append`` is durable when it returns (the owner acknowledges an edit only then); ``compact``
replaces the updates up to a sequence number with one snapshot, atomically. ``synced`` names the
file contents (sha256) the document is known to account for, so that after a crash the owner can
tell whether the file or the document is ahead (see actors/workspace/live.py).
``MemoryDocumentStore`` is the in-process fake; a database-backed store lives with its owner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from collab.errors import SequenceTaken

__all__ = ["DocumentStore", "MemoryDocumentStore", "StoredDocument"]


@dataclass(frozen=True, slots=True)
class StoredDocument:
    snapshot: bytes | None
    # Updates with ``seq <= snapshot_seq`` are inside the snapshot.
    snapshot_seq: int
    # ``(seq, update)`` after the snapshot, in order.
    updates: tuple[tuple[int, bytes], ...] = ()
    synced: tuple[str, ...] = ()

    @property
    def last_seq(self) -> int:
        return self.updates[-1][0] if self.updates else self.snapshot_seq


class DocumentStore(Protocol):
    async def load(self, workspace_id: str, path: str) -> StoredDocument | None:
        """The stored document, or None if it was never stored (or was deleted)."""
        ...

    async def append(
        self,
        workspace_id: str,
        path: str,
        seq: int,
        update: bytes,
        *,
        synced: tuple[str, ...] | None = None,
    ) -> None:
        """Store ``update`` as number ``seq`` (durable on return); a taken ``seq`` raises
        ``SequenceTaken``.

        ``synced`` (when given) replaces the file contents the document accounts for.
        """
        ...

    async def compact(
        self, workspace_id: str, path: str, snapshot: bytes, *, through_seq: int
    ) -> None:
        """Make ``snapshot`` the state through ``through_seq`` and drop those updates."""
        ...

    async def mark_synced(self, workspace_id: str, path: str, synced: tuple[str, ...]) -> None: ...

    async def delete(self, workspace_id: str, path: str) -> None:
        """Forget the document (its file was deleted or moved away)."""
        ...


@dataclass
class _Entry:
    snapshot: bytes | None = None
    snapshot_seq: int = 0
    updates: dict[int, bytes] = field(default_factory=dict)
    synced: tuple[str, ...] = ()


class MemoryDocumentStore:
    """In-process ``DocumentStore`` (tests, embedded demos). Not durable across processes."""

    def __init__(self) -> None:
        self._docs: dict[tuple[str, str], _Entry] = {}

    async def load(self, workspace_id: str, path: str) -> StoredDocument | None:
        entry = self._docs.get((workspace_id, path))
        if entry is None:
            return None
        updates = tuple(sorted(entry.updates.items()))
        return StoredDocument(entry.snapshot, entry.snapshot_seq, updates, entry.synced)

    async def append(
        self,
        workspace_id: str,
        path: str,
        seq: int,
        update: bytes,
        *,
        synced: tuple[str, ...] | None = None,
    ) -> None:
        entry = self._docs.setdefault((workspace_id, path), _Entry())
        if seq in entry.updates or seq <= entry.snapshot_seq:
            raise SequenceTaken(f"update {seq} of {path!r} is already stored")
        entry.updates[seq] = bytes(update)
        if synced is not None:
            entry.synced = synced

    async def compact(
        self, workspace_id: str, path: str, snapshot: bytes, *, through_seq: int
    ) -> None:
        entry = self._docs.setdefault((workspace_id, path), _Entry())
        entry.snapshot, entry.snapshot_seq = bytes(snapshot), through_seq
        entry.updates = {s: u for s, u in entry.updates.items() if s > through_seq}

    async def mark_synced(self, workspace_id: str, path: str, synced: tuple[str, ...]) -> None:
        self._docs.setdefault((workspace_id, path), _Entry()).synced = synced

    async def delete(self, workspace_id: str, path: str) -> None:
        self._docs.pop((workspace_id, path), None)
