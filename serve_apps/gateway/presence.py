"""Presence across gateway replicas: who is in a workspace, whichever replica they reached.

Each replica writes the users it holds in a workspace under its own key,
``presence:{workspace_id}:{replica}`` (a JSON list, with a TTL it keeps refreshing), so no two
replicas ever write the same key and no read-modify-write is needed. A workspace's presence is
this replica's own users plus the keys of the other live replicas (those whose pings on the
realtime channel arrive, see ``RealtimeHub``): a replica that dies drops out as soon as its
pings stop, and its keys expire. On Redis this crosses replicas; in embedded mode the
in-process key-value store holds the one replica's keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import structlog

from state.errors import StateError
from state.kv import KeyValueStore

__all__ = ["PresenceBoard", "presence_key"]

log = structlog.get_logger("gateway.presence")

PRESENCE_TTL_S = 30.0


def presence_key(workspace_id: str, replica: str) -> str:
    return f"presence:{workspace_id}:{replica}"


class PresenceBoard:
    """This replica's side of the presence board: what it publishes, and reading everyone's."""

    def __init__(self, kv: KeyValueStore, *, replica: str, ttl_s: float = PRESENCE_TTL_S) -> None:
        self._kv = kv
        self.replica = replica
        self.ttl_s = ttl_s
        # workspace id -> the users this replica holds there (what its key says, or should).
        self._mine: dict[str, frozenset[str]] = {}
        self._unwritten: set[str] = set()

    def local(self, workspace_id: str) -> frozenset[str]:
        return self._mine.get(workspace_id, frozenset())

    async def publish(self, workspace_id: str, users: Iterable[str]) -> None:
        """Record the users this replica holds in the workspace (none: remove its key).

        Never raises: a write that fails is retried by ``refresh``.
        """
        users = frozenset(users)
        if users == self._mine.get(workspace_id, frozenset()) and (
            workspace_id not in self._unwritten
        ):
            return
        if users:
            self._mine[workspace_id] = users
        else:
            self._mine.pop(workspace_id, None)
        await self._write(workspace_id)

    async def users(self, workspace_id: str, replicas: Iterable[str]) -> set[str]:
        """Everyone present in the workspace: this replica's users and those of ``replicas``.

        A replica whose key cannot be read counts as empty (the answer is a best effort).
        """
        present = set(self.local(workspace_id))
        for replica in replicas:
            if replica == self.replica:
                continue
            try:
                raw = await self._kv.get(presence_key(workspace_id, replica))
            except StateError as exc:
                log.warning("presence.read_failed", replica=replica, error=str(exc))
                continue
            if raw is None:
                continue
            try:
                listed = json.loads(raw)
            except ValueError:
                continue
            if isinstance(listed, list):
                present.update(str(user) for user in listed)
        return present

    async def refresh(self) -> None:
        """Rewrite every key this replica holds (their TTL), and retry failed writes."""
        for workspace_id in list(self._mine) + list(self._unwritten - set(self._mine)):
            await self._write(workspace_id)

    async def clear(self) -> None:
        """Remove this replica's keys (it is shutting down)."""
        for workspace_id in list(self._mine):
            self._mine.pop(workspace_id, None)
            await self._write(workspace_id)

    async def _write(self, workspace_id: str) -> None:
        key = presence_key(workspace_id, self.replica)
        users = self._mine.get(workspace_id)
        try:
            if users:
                value = json.dumps(sorted(users), separators=(",", ":")).encode()
                await self._kv.set(key, value, ttl_s=self.ttl_s)
            else:
                await self._kv.delete(key)
        except StateError as exc:
            self._unwritten.add(workspace_id)
            log.warning("presence.write_failed", workspace_id=workspace_id, error=str(exc))
            return
        self._unwritten.discard(workspace_id)
