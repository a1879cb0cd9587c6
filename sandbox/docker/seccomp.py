"""The seccomp profile of docker sandboxes: ``sandbox/syscall_policy.py`` in docker's format
(bubblewrap's BPF filter enforces the same table).

Docker's default profile lets ``ptrace`` through on current kernels, so the sandboxes run
under a profile of our own instead: allow by default, refuse with EPERM every call the
bubblewrap filter refuses (ptrace, mount, namespaces, keyrings, bpf, io_uring...), ``clone``
with any namespace flag and ``ioctl(TIOCSTI/TIOCLINUX)``, and answer ``clone3`` with ENOSYS so
libc falls back to ``clone``. Listing only x86-64 makes the kernel kill other ABIs (i386, x32).
"""

from __future__ import annotations

import errno
import json
from typing import Any

from sandbox.syscall_policy import BLOCKED_SYSCALLS, CLONE_NAMESPACE_FLAGS, TIOCLINUX, TIOCSTI

__all__ = ["CLONE_NAMESPACE_FLAGS", "profile", "security_opt"]


def _refuse(name: str, code: int, args: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": code}
    if args:
        rule["args"] = args
    return rule


def profile() -> dict[str, Any]:
    rules = [
        {
            "names": sorted(BLOCKED_SYSCALLS),
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EPERM,
        },
        _refuse("clone3", errno.ENOSYS),
    ]
    # Rules for one call are OR-ed; (arg0 & flag) == flag catches each namespace flag.
    rules += [
        _refuse(
            "clone",
            errno.EPERM,
            [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
        )
        for flag in CLONE_NAMESPACE_FLAGS.values()
    ]
    rules += [
        _refuse("ioctl", errno.EPERM, [{"index": 1, "value": request, "op": "SCMP_CMP_EQ"}])
        for request in (TIOCSTI, TIOCLINUX)
    ]
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": rules,
    }


def security_opt() -> list[str]:
    """``security_opt`` for the SDK: our seccomp profile and no-new-privileges."""
    return ["no-new-privileges", "seccomp=" + json.dumps(profile(), separators=(",", ":"))]
