"""The command line that starts one hardened bubblewrap sandbox (see docs/sandbox.md).

``sh`` (root) moves itself into the sandbox's cgroups, then execs ``setpriv``, which drops
to the unprivileged sandbox uid with no groups, no capabilities and no_new_privs, then execs
``bwrap``, which builds the namespaces and mounts and runs the supervisor as pid 2 under
bwrap's own pid 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sandbox.settings import BubblewrapSettings
from sandbox.types import WORKSPACE_MOUNT, SandboxSpec

__all__ = ["bwrap_argv", "supervisor_config"]

# Writes "$$" into each cgroup.procs given before "--", then execs the rest.
_ENTER_CGROUPS = (
    'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
)
_MERGED_USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_READ_ONLY_ETC = ("ld.so.cache", "alternatives", "localtime")
PATH = "/usr/local/bin:/usr/bin:/bin"
# Paths inside the sandbox: private tmpfs mounts, never the host's.
SANDBOX_TMP = "/tmp"  # noqa: S108
SANDBOX_SHM = "/dev/shm"  # noqa: S108


def supervisor_config(spec: SandboxSpec, *, rlimit_fallback: bool) -> dict[str, Any]:
    limits = spec.limits
    rlimits = {"cpu": limits.cpu_time_s, "fsize": limits.file_size_bytes}
    if rlimit_fallback:  # Weak: per uid (nproc) and per process (as), not per sandbox.
        rlimits |= {"nproc": limits.pids, "as": limits.memory_bytes}
    return {
        "workspace": WORKSPACE_MOUNT,
        "wipe_dirs": [SANDBOX_TMP, SANDBOX_SHM],
        "own_pid_namespace": True,
        "base_env": {
            "PATH": PATH,
            "HOME": SANDBOX_TMP,
            "TMPDIR": SANDBOX_TMP,
            "LANG": "C.UTF-8",
            "TERM": "xterm-256color",
            # No __pycache__ in /workspace: Python checks bytecode against the source's mtime
            # in whole seconds and its size, so an edit within the second that keeps the size
            # (an agent's "a - b" -> "a + b") would run stale code; nor .pyc files as versions.
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        | spec.env,
        "rlimits": rlimits,
        "output_bytes": limits.output_bytes,
        "log_bytes": limits.output_bytes,
    }


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
    return args


def bwrap_argv(
    settings: BubblewrapSettings,
    spec: SandboxSpec,
    *,
    slot: Path,
    cgroup_procs: list[str],
    info_fd: int,
    seccomp_fd: int,
    supervisor_source: str,
    config: dict[str, Any],
) -> list[str]:
    limits = spec.limits
    argv = []
    if cgroup_procs:
        argv += ["/bin/sh", "-c", _ENTER_CGROUPS, "vibecode-cgroup", *cgroup_procs, "--"]
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
        str(settings.python_path), "-I", "-S", "-c", supervisor_source, json.dumps(config),
    ]  # fmt: skip
    return argv
