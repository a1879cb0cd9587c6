"""The /workspace slot of a sandbox (bubblewrap and docker), and handing a workspace to the
sandbox user.

Each sandbox binds a private, root-owned, empty *slot* directory at /workspace. The slot is
a shared mount point of its own peer group, and the sandbox's copy of it is a slave, so a
bind mount the host later puts on the slot appears inside the running sandbox: that is how a
warm sandbox gets its workspace at lease time (``attach``) and loses it again (``detach``).

Ownership: the sandbox runs as one unprivileged host uid. ``adopt`` chowns the workspace
tree to that uid with ``os.fwalk`` and ``*at`` calls that never follow symlinks, so a
symlink planted in the workspace cannot redirect a chown to a host file; files with several
hard links are left alone (a hard link to a host file must never become the sandbox's).
"""

from __future__ import annotations

import ctypes
import os
import stat
from pathlib import Path

__all__ = ["adopt", "attach", "create_slot", "detach", "remove_slot", "unmount_under"]

MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str | None, target: str, flags: int) -> None:
    src = source.encode() if source is not None else None
    if _libc.mount(src, target.encode(), None, flags, None) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} -> {target}: {os.strerror(error)}")


def _umount(target: Path) -> bool:
    result: int = _libc.umount2(str(target).encode(), MNT_DETACH)
    return result == 0


def create_slot(sandbox_dir: Path) -> Path:
    """Make ``sandbox_dir/workspace``: an empty, root-owned mount point that propagates."""
    # The state dir itself is removed when the last backend using it exits empty.
    sandbox_dir.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
    sandbox_dir.mkdir(mode=0o711)
    slot = sandbox_dir / "workspace"
    slot.mkdir(mode=0o755)
    _mount(str(slot), str(slot), MS_BIND)
    _mount(None, str(slot), MS_PRIVATE)  # Leave the parent's peer group first...
    _mount(None, str(slot), MS_SHARED)  # ...then start a new one of our own.
    return slot


def attach(slot: Path, workspace_dir: Path) -> None:
    """Show ``workspace_dir`` at the slot (and so at /workspace in the sandbox)."""
    _mount(str(workspace_dir), str(slot), MS_BIND)


def detach(slot: Path) -> None:
    """Take the attached workspace off the slot (lazily if something still holds it)."""
    _umount(slot)


def remove_slot(sandbox_dir: Path) -> None:
    slot = sandbox_dir / "workspace"
    for _ in range(16):  # The attached workspace, then the slot's own bind (EINVAL after).
        if not _umount(slot):
            break
    for path in (slot, sandbox_dir):
        try:
            path.rmdir()
        except FileNotFoundError:
            continue


def unmount_under(root: Path) -> int:
    """Detach every mount at or below ``root``, deepest first; return how many were detached.

    Slots and attached workspaces are bind mounts in the host's namespace: a pool that was
    killed (or a node that restarts the platform) leaves them behind. Only call this when no
    sandbox under ``root`` is in use.
    """
    prefix = str(root.resolve())
    detached = 0
    for _ in range(4):  # Stacked mounts (a workspace on its slot) come off one layer a pass.
        points = []
        with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
            for line in mountinfo:
                point = line.split()[4].encode().decode("unicode_escape")
                if point == prefix or point.startswith(prefix + "/"):
                    points.append(point)
        if not points:
            break
        for point in sorted(set(points), key=len, reverse=True):
            if _umount(Path(point)):
                detached += 1
    return detached


def adopt(workspace_dir: Path, uid: int, gid: int) -> int:
    """Give the tree to the sandbox user; returns how many hard-linked files were skipped."""
    skipped = 0
    root_fd = os.open(workspace_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.chown(root_fd, uid, gid)
    finally:
        os.close(root_fd)
    for _dirpath, dirnames, filenames, dir_fd in os.fwalk(workspace_dir, follow_symlinks=False):
        for name in (*dirnames, *filenames):
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if info.st_uid == uid and info.st_gid == gid:
                continue
            if not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1:
                skipped += 1
                continue
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    return skipped
