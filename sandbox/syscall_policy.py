"""The system calls every sandbox is refused, whatever enforces it (bubblewrap's BPF filter,
docker's seccomp profile): one table, so the backends cannot drift apart.

Refused with EPERM: calls that widen the kernel's attack surface or reach outside the sandbox
(ptrace, mount, namespaces, keyrings, bpf, perf, modules, kexec, io_uring...), ``clone`` with
any namespace flag and ``ioctl(TIOCSTI/TIOCLINUX)`` (terminal injection). ``clone3`` gets
ENOSYS, so libc falls back to ``clone``, whose flags a filter can inspect. x86_64 only: any
other ABI (i386, x32) is killed.
"""

from __future__ import annotations

__all__ = [
    "BLOCKED_SYSCALLS",
    "CLONE",
    "CLONE3",
    "CLONE_NAMESPACE_FLAGS",
    "IOCTL",
    "TIOCLINUX",
    "TIOCSTI",
]

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

CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
    "CLONE_NEWTIME": 0x00000080,
}
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
