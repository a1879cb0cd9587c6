"""Turning what sandboxed commands did to a working tree into one set of manifest changes.

The tree is untrusted after a command ran in it: only regular files with a single link and a
valid name are versioned (read again with ``O_NOFOLLOW`` and hashed from the bytes read);
symlinks, special files, hard links and bad names are reported and left out, so a link to a
host file can never become workspace content. A versioned path that is now skipped (e.g. a
file replaced by a hard link) keeps its versioned content.

A file's mode is versioned as git does, executable or not (``file_mode``): ``chmod +x`` alone is
a change too, recorded without reading the file again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.workspace.api import WorkspaceError
from actors.workspace.manifest import Entry, Manifest
from actors.workspace.tree import WorkingTree
from state.blobs.protocol import digest_of

__all__ = ["SyncPlan", "plan_sync"]


@dataclass(slots=True)
class SyncPlan:
    changes: dict[str, Entry | None] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def plan_sync(manifest: Manifest, tree: WorkingTree) -> SyncPlan:
    """Compare ``tree`` with ``manifest``; blocking (scans and reads): run it on a thread."""
    scan = tree.scan()
    plan = SyncPlan(skipped=list(scan.skipped))
    for path, (_size, sha256) in scan.files.items():
        current = manifest.get(path)
        mode = scan.modes[path]
        if current is not None and current.sha256 == sha256:
            if current.mode != mode:  # Only the mode changed: the stored content stays.
                plan.changes[path] = Entry(current.sha256, current.size, mode)
            continue
        try:
            data = tree.read(path)
        except WorkspaceError as exc:  # Replaced by a link or removed since the scan.
            plan.skipped.append((path, exc.detail))
            continue
        plan.changes[path] = Entry(digest_of(data), len(data), mode)
        plan.contents[path] = data
    seen = set(scan.files) | {path for path, _ in plan.skipped}
    for path in manifest:
        if path not in seen:
            plan.changes[path] = None
    return plan
