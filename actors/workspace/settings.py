"""Settings of workspace sessions and their hosts."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

__all__ = ["WorkspaceSettings"]


class WorkspaceSettings(BaseModel):
    """Quotas, timeouts and placement of workspace sessions.

    Idle timeout, maximum lifetime and request timeout are three separate values on purpose.
    """

    # Number of WorkspaceHost actors (``ws-host:<n>``) the directory spreads workspaces over.
    hosts: int = 2
    # Unload a session after this long without a request.
    idle_timeout_s: float = 600.0
    # Unload (and reopen on the next request) after this long even if busy, to bound drift.
    max_lifetime_s: float = 24 * 3600.0
    # How long a gateway waits for one session call before answering 503.
    request_timeout_s: float = 60.0
    max_file_bytes: int = 10 * 1024 * 1024
    max_workspace_bytes: int = 256 * 1024 * 1024
    max_files: int = 20_000
    # Upload bodies (files, zip archives) may be this large; JSON bodies keep the gateway limit.
    max_upload_bytes: int = 64 * 1024 * 1024
    # Deleted workspaces keep their files and versions this long before they are purged.
    delete_grace_s: float = 7 * 24 * 3600.0
    # How often the purging host looks for deleted workspaces past their grace period.
    purge_interval_s: float = 3600.0
    # Working trees on this node's disk. None: ``<data_dir>/trees``.
    trees_dir: Path | None = None
    # A gateway replica trusts a member's role it looked up for this long (0: look up on every
    # request). Changes made through the replica itself apply at once; changes made elsewhere
    # (another replica, an accepted invitation, a deleted account) apply within this bound.
    role_cache_ttl_s: float = 2.0
    # Live documents: turn typing into a file version this long after the last edit...
    collab_flush_delay_s: float = 0.3
    # ...or this long after the first edit not yet in a version, if people keep typing.
    collab_flush_max_delay_s: float = 2.0
    # Compact a document's update log into a snapshot after this many updates.
    collab_compact_every: int = 200
