"""The seccomp filter every bubblewrap sandbox runs under, as a classic BPF program.

Built here in pure Python (no libseccomp needed): deny with EPERM the calls that widen the
kernel's attack surface or reach outside the sandbox (ptrace, mount, namespaces, keyrings,
bpf, perf, modules, kexec, io_uring...), refuse ``clone`` with namespace flags and
``ioctl(TIOCSTI)`` terminal injection, answer ``clone3`` with ENOSYS (so libc falls back to
``clone``, whose flags we can inspect), and kill any process using another ABI (i386, x32).
"""

from __future__ import annotations

import errno
import os
import platform
import struct

from sandbox.errors import SandboxUnavailable

__all__ = ["BLOCKED_SYSCALLS", "filter_program", "seccomp_fd"]

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
CLONE_NAMESPACE_FLAGS = 0x7E020080  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME
TIOCSTI = 0x5412
TIOCLINUX = 0x541C

# x86_64 numbers (arch/x86/entry/syscalls/syscall_64.tbl).
BLOCKED_SYSCALLS: dict[str, int] = {
    "ptrace": 101, "syslog": 103, "uselib": 134, "personality": 135, "ustat": 136,
    "sysfs": 139, "vhangup": 153, "pivot_root": 155, "_sysctl": 156, "adjtimex": 159,
    "chroot": 161, "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166,
    "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170, "setdomainname": 171,
    "iopl": 172, "ioperm": 173, "init_module": 175, "delete_module": 176, "quotactl": 179,
    "nfsservctl": 180, "lookup_dcookie": 212, "clock_settime": 227, "kexec_load": 246,
    "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308,
    "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "finit_module": 313,
    "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
}  # fmt: skip
CLONE, CLONE3, IOCTL = 56, 435, 16

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
        (JSET_K, "eperm", 0, CLONE_NAMESPACE_FLAGS),
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
    fd = os.memfd_create("vibecode-seccomp", 0)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
