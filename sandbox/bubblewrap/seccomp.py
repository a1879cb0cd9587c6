"""The seccomp filter every bubblewrap sandbox runs under, as a classic BPF program.

Built here in pure Python (no libseccomp needed) from the policy in
``sandbox/syscall_policy.py``: EPERM for the refused calls, ``clone`` with namespace flags and
``ioctl(TIOCSTI)`` terminal injection; ENOSYS for ``clone3`` (so libc falls back to ``clone``,
whose flags we can inspect); any process using another ABI (i386, x32) is killed. Assembled
once per backend (well under a millisecond); each launch gets a fresh memfd with it.
"""

from __future__ import annotations

import errno
import os
import platform
import struct

from sandbox.errors import SandboxUnavailable
from sandbox.syscall_policy import (
    BLOCKED_SYSCALLS,
    CLONE,
    CLONE3,
    CLONE_NAMESPACE_FLAGS,
    IOCTL,
    TIOCLINUX,
    TIOCSTI,
)

__all__ = ["BLOCKED_SYSCALLS", "filter_program", "seccomp_fd"]

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
CLONE_NAMESPACE_MASK = sum(CLONE_NAMESPACE_FLAGS.values())

# Classic BPF opcodes.
LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0, OFFSET_ARG1 = 0, 4, 16, 24

Instruction = tuple[int, int | str, int | str, int]


def _assemble(program: list[Instruction | str]) -> bytes:
    """Resolve string jump targets (labels, given as bare strings in the list) to offsets."""
    labels: dict[str, int] = {}
    code: list[Instruction] = []
    for item in program:
        if isinstance(item, str):
            labels[item] = len(code)
        else:
            code.append(item)
    out = bytearray()
    for index, (op, jt, jf, k) in enumerate(code):
        jumps = [labels[j] - index - 1 if isinstance(j, str) else j for j in (jt, jf)]
        if not all(0 <= jump <= 255 for jump in jumps):
            raise ValueError("seccomp jump out of range")
        out += struct.pack("<HBBI", op, jumps[0], jumps[1], k)
    return bytes(out)


def filter_program() -> bytes:
    """The BPF program (``struct sock_filter[]``) for this machine's architecture."""
    if platform.machine() != "x86_64":
        raise SandboxUnavailable("bubblewrap", f"no seccomp syscall table for {platform.machine()}")
    program: list[Instruction | str] = [
        (LD_W_ABS, 0, 0, OFFSET_ARCH),
        (JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        (RET_K, 0, 0, RET_KILL_PROCESS),
        (LD_W_ABS, 0, 0, OFFSET_NR),
        (JGE_K, "kill", 0, X32_SYSCALL_BIT),
        (JEQ_K, "clone", 0, CLONE),
        (JEQ_K, "enosys", 0, CLONE3),
        (JEQ_K, "ioctl", 0, IOCTL),
    ]
    program += [(JEQ_K, "eperm", 0, number) for number in sorted(BLOCKED_SYSCALLS.values())]
    program += [
        (RET_K, 0, 0, RET_ALLOW),
        "clone",
        (LD_W_ABS, 0, 0, OFFSET_ARG0),
        (JSET_K, "eperm", 0, CLONE_NAMESPACE_MASK),
        (RET_K, 0, 0, RET_ALLOW),
        "ioctl",
        (LD_W_ABS, 0, 0, OFFSET_ARG1),
        (JEQ_K, "eperm", 0, TIOCSTI),
        (JEQ_K, "eperm", 0, TIOCLINUX),
        (RET_K, 0, 0, RET_ALLOW),
        "eperm",
        (RET_K, 0, 0, RET_ERRNO | errno.EPERM),
        "enosys",
        (RET_K, 0, 0, RET_ERRNO | errno.ENOSYS),
        "kill",
        (RET_K, 0, 0, RET_KILL_PROCESS),
    ]
    return _assemble(program)


def seccomp_fd(program: bytes) -> int:
    """A fresh fd holding ``program`` at offset 0: bwrap reads it to the end, once."""
    fd = os.memfd_create("vibecode-seccomp")  # close-on-exec: passed on with pass_fds only
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
