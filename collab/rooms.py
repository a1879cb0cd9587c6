"""Rooms: the peers of one workspace, which documents each has open, and their awareness.

Transport-agnostic bookkeeping: a peer is any hashable id the transport chooses (a WebSocket,
a Socket.IO sid). A workspace's ``Room`` knows its peers and users (presence); each open
document has its own awareness states.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field

from collab.awareness import AwarenessStates, decode_awareness

__all__ = ["Peer", "Room", "Rooms"]


@dataclass
class Peer:
    peer_id: Hashable
    user_id: str
    can_write: bool
    path: str | None = None
    # Awareness client ids this peer announced; removed for it when it leaves.
    awareness_clients: set[int] = field(default_factory=set)


class Room:
    def __init__(self, workspace_id: str) -> None:
        self.workspace_id = workspace_id
        self.peers: dict[Hashable, Peer] = {}
        self._awareness: dict[str, AwarenessStates] = {}

    def join(self, peer: Peer) -> None:
        self.peers[peer.peer_id] = peer

    def leave(self, peer_id: Hashable) -> bytes | None:
        """Remove the peer; return the awareness update announcing its clients left, if any."""
        peer = self.peers.pop(peer_id, None)
        if peer is None or peer.path is None or not peer.awareness_clients:
            return None
        awareness = self._awareness.get(peer.path)
        if awareness is None:
            return None
        update = awareness.remove(peer.awareness_clients)
        if not len(awareness):
            del self._awareness[peer.path]
        return update

    def awareness(self, path: str) -> AwarenessStates:
        return self._awareness.setdefault(path, AwarenessStates())

    def apply_awareness(self, peer_id: Hashable, path: str, update: bytes) -> bool:
        """Merge a peer's awareness update; return True if anything changed."""
        peer = self.peers.get(peer_id)
        if peer is not None:
            for entry in decode_awareness(update):
                if entry.state is None:
                    peer.awareness_clients.discard(entry.client_id)
                else:
                    peer.awareness_clients.add(entry.client_id)
        return bool(self.awareness(path).apply(update))

    def peers_of(self, path: str) -> list[Peer]:
        return [p for p in self.peers.values() if p.path == path]

    def users(self) -> set[str]:
        """Who is here (presence): the distinct user ids of the peers."""
        return {p.user_id for p in self.peers.values()}

    def __len__(self) -> int:
        return len(self.peers)


class Rooms:
    """Every room of one process, created on first join and dropped when empty."""

    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}

    def room(self, workspace_id: str) -> Room:
        return self._rooms.setdefault(workspace_id, Room(workspace_id))

    def get(self, workspace_id: str) -> Room | None:
        return self._rooms.get(workspace_id)

    def leave(self, workspace_id: str, peer_id: Hashable) -> bytes | None:
        room = self._rooms.get(workspace_id)
        if room is None:
            return None
        update = room.leave(peer_id)
        if not room:
            del self._rooms[workspace_id]
        return update

    def __iter__(self) -> Iterator[Room]:
        return iter(list(self._rooms.values()))
