"""The command line that starts one hardened bubblewrap sandbox (see docs/sandbox.md).

``sh`` (root) moves itself into the sandbox's cgroups and waits for a line on its stdin (the
chain is prepared ahead, see ``launcher.py``), then execs ``setpriv``, which drops to the
unprivileged sandbox uid with no groups, no capabilities and no_new_privs, then execs
``bwrap``, which builds the namespaces and mounts and runs the supervisor as pid 2 under
bwrap's own pid 1. The supervisor's stdin is the same pipe, after that line.
"""

from __future__ import annotations

from pathlib import Path

from sandbox.launch import ALIAS_BIN, SANDBOX_SHM, SANDBOX_TMP
from sandbox.settings import BubblewrapSettings
from sandbox.types import WORKSPACE_MOUNT, SandboxSpec

__all__ = ["bwrap_argv"]

# Writes "$$" into each cgroup.procs given before "--", reads one line, then execs the rest
# (dash reads it a byte at a time, so what follows on stdin is left for the supervisor).
_ENTER_CGROUPS_AND_WAIT = (
    'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; '
    'read -r _ || exit 125; exec "$@"'
)
_MERGED_USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_READ_ONLY_ETC = ("ld.so.cache", "alternatives", "localtime")
# Commands people (and models) type that Debian names differently: `python` runs python3.
_ALIASES = {"python": "python3", "pip": "pip3"}


def _root_filesystem() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _MERGED_USR_LINKS:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in _READ_ONLY_ETC:
        path = Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    for alias, target in _ALIASES.items():
        # In the sandbox's own root (a tmpfs), on PATH after the real directories.
        if not (Path("/usr/bin") / alias).exists() and (Path("/usr/bin") / target).exists():
            args += ["--symlink", f"/usr/bin/{target}", f"{ALIAS_BIN}/{alias}"]
    return args


def bwrap_argv(
    settings: BubblewrapSettings,
    spec: SandboxSpec,
    *,
    slot: Path,
    cgroup_procs: list[str],
    info_fd: int,
    seccomp_fd: int,
    supervisor: list[str],
) -> list[str]:
    """The whole launch chain; ``supervisor`` is the command bwrap runs (the supervisor's)."""
    limits = spec.limits
    argv = ["/bin/sh", "-c", _ENTER_CGROUPS_AND_WAIT, "vibecode-launch", *cgroup_procs, "--"]
    argv += [
        str(settings.setpriv_path),
        f"--reuid={settings.sandbox_uid}",
        f"--regid={settings.sandbox_gid}",
        "--clear-groups",
        "--no-new-privs",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
        str(settings.bwrap_path),
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--clearenv",
        "--hostname",
        "sandbox",
    ]
    if spec.network:
        argv.append("--share-net")
    argv += _root_filesystem()
    argv += [
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(limits.tmp_bytes), "--tmpfs", SANDBOX_SHM,
        "--remount-ro", "/dev",
        "--size", str(limits.tmp_bytes), "--tmpfs", SANDBOX_TMP,
        "--bind", str(slot), WORKSPACE_MOUNT,
        "--chdir", WORKSPACE_MOUNT,
        "--remount-ro", "/",
        "--info-fd", str(info_fd),
        "--seccomp", str(seccomp_fd),
        "--",
        *supervisor,
    ]  # fmt: skip
    return argv
