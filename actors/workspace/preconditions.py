"""What a change must satisfy before it is stored: If-Match, quotas, files vs directories."""

from __future__ import annotations

from collections.abc import Mapping

from actors.workspace.api import InvalidPath, PreconditionFailed, QuotaExceeded
from actors.workspace.manifest import Entry, Manifest
from actors.workspace.settings import WorkspaceSettings

__all__ = ["check_file_size", "check_if_match", "check_limits"]


def check_if_match(path: str, current: Entry | None, if_match: str | None) -> None:
    """``If-Match``: None skips the check, ``*`` requires the file, else its sha256 must match.

    ETag spellings (``"<sha>"``, ``W/"<sha>"``) are accepted as well as the bare digest.
    """
    if if_match is None:
        return
    current_sha = current.sha256 if current else None
    if if_match.strip() == "*":
        if current is None:
            raise PreconditionFailed(f"{path!r} does not exist", None)
        return
    expected = if_match.strip().removeprefix("W/").strip('"')
    if expected != current_sha:
        raise PreconditionFailed(f"{path!r} has changed", current_sha)


def check_file_size(path: str, size: int, settings: WorkspaceSettings) -> None:
    limit = settings.max_file_bytes
    if size > limit:
        raise QuotaExceeded(f"{path!r} is {size} bytes; files may be {limit} bytes", limit)


def check_limits(
    old: Manifest, new: Manifest, changes: Mapping[str, Entry | None], settings: WorkspaceSettings
) -> None:
    """Workspace quotas (a change that shrinks an over-quota workspace is allowed) and that no
    added file sits where a directory is, or under a path that is a file."""
    if new.total_bytes > settings.max_workspace_bytes and new.total_bytes > old.total_bytes:
        raise QuotaExceeded(
            f"the workspace would hold {new.total_bytes} bytes; "
            f"the limit is {settings.max_workspace_bytes}",
            settings.max_workspace_bytes,
        )
    if len(new) > settings.max_files and len(new) > len(old):
        raise QuotaExceeded(
            f"the workspace would hold {len(new)} files; the limit is {settings.max_files}",
            settings.max_workspace_bytes,
            settings.max_files,
        )
    for path, entry in changes.items():
        if entry is None or path in old:
            continue
        if new.is_dir(path):
            raise InvalidPath(f"{path!r} is a directory")
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in new:
                raise InvalidPath(f"{parent!r} is a file, not a directory")
