"""Members' roles as a gateway replica last saw them, trusted for a few seconds.

Every workspace request is authorized by the caller's role; looking it up was one database
query per request, a quarter of a replica's work for a file write (``docs/benchmarks.md``).
Only roles found are kept (a refusal is looked up again, so a new member gets in at once),
for ``ttl_s`` (``workspace.role_cache_ttl_s``, 2 s by default).

Freshness: a change made through this replica's ``WorkspaceCatalog`` (adding, removing or
re-roling a member, transferring or deleting the workspace) drops the workspace's entries when
it commits, and a lookup that overlapped any such change is not kept. A change made elsewhere
(another replica, an accepted invitation, a deleted account) applies here within ``ttl_s``.
(A deleted workspace is refused at once regardless: reads and writes check it themselves.)
"""

from __future__ import annotations

import time
from collections import OrderedDict

from actors.workspace.catalog import WorkspaceCatalog

__all__ = ["RoleCache"]

_MAX_ENTRIES = 10_000


class RoleCache:
    def __init__(
        self, catalog: WorkspaceCatalog, *, ttl_s: float, max_entries: int = _MAX_ENTRIES
    ) -> None:
        self._catalog = catalog
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        # (user id, workspace id) -> (role, monotonic expiry), oldest first.
        self._roles: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        # Bumped by every change, so a lookup that overlapped one is not kept.
        self._generation = 0
        catalog.on_change.append(self.forget)

    async def role_of(self, user_id: str, workspace_id: str) -> str:
        """The caller's role; ``WorkspaceNotFound`` when not a member (or no such workspace)."""
        key = (user_id, workspace_id)
        cached = self._roles.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        generation = self._generation
        role = await self._catalog.role_of(user_id, workspace_id)
        if self._ttl_s > 0 and self._generation == generation:
            self._roles[key] = (role, time.monotonic() + self._ttl_s)
            self._roles.move_to_end(key)
            while len(self._roles) > self._max_entries:
                self._roles.popitem(last=False)
        return role

    def forget(self, workspace_id: str) -> None:
        """Drop every cached role in ``workspace_id`` (its memberships changed)."""
        self._generation += 1
        for key in [key for key in self._roles if key[1] == workspace_id]:
            del self._roles[key]
