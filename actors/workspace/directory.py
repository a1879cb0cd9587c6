"""Which host owns a workspace: rendezvous (highest-random-weight) hashing over host names.

Every gateway replica computes the same owner from the same host list with no coordination, and
changing the number of hosts moves only the workspaces of the added or removed hosts. Hashing
picks the owner; the fenced lease in the database (see ``session.py``) guarantees that even
while hosts move or restart at most one session writes.
"""

from __future__ import annotations

import hashlib

__all__ = ["host_name", "host_names", "owner_of"]

HOST_PREFIX = "ws-host"


def host_name(index: int) -> str:
    return f"{HOST_PREFIX}:{index}"


def host_names(count: int) -> list[str]:
    if count < 1:
        raise ValueError("at least one workspace host is needed")
    return [host_name(index) for index in range(count)]


def _weight(workspace_id: str, host: str) -> int:
    digest = hashlib.blake2b(f"{host}\0{workspace_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner_of(workspace_id: str, hosts: list[str]) -> str:
    """Return the host in ``hosts`` that owns ``workspace_id``."""
    if not hosts:
        raise ValueError("no workspace hosts")
    return max(hosts, key=lambda host: _weight(workspace_id, host))
