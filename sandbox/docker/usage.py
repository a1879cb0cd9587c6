"""A docker sandbox's memory cgroup, found from the host (its size and OOM kills are read there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox.cgroups import ROOT, SandboxCgroup

__all__ = ["container_cgroup", "memory_cgroup_dir"]


def memory_cgroup_dir(proc_cgroup: str, root: Path = ROOT) -> tuple[str, Path] | None:
    """The memory cgroup directory named by a ``/proc/<pid>/cgroup`` text, with its mode.

    cgroup v1 has a ``N:memory:/path`` line; v2 only ``0::/path``."""
    unified = None
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return "cgroup_v1", root / "memory" / path.lstrip("/")
        if controllers == "":
            unified = root / path.lstrip("/")
    if unified is not None:
        return "cgroup_v2", unified
    return None


def container_cgroup(attrs: dict[str, Any]) -> SandboxCgroup | None:
    """The running container's memory cgroup, found through its init's pid (daemon on this host).

    None when the daemon runs elsewhere or the container already stopped."""
    pid = int(attrs.get("State", {}).get("Pid") or 0)
    if pid <= 0:
        return None
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    found = memory_cgroup_dir(text)
    if found is None or not found[1].is_dir():
        return None
    mode, directory = found
    return SandboxCgroup("cgroup_v1" if mode == "cgroup_v1" else "cgroup_v2", [directory])
