"""Escape attempts as data, so every transport (library calls here, the HTTP API later) runs
the same list. Each attack is a shell script that prints ``ESCAPED`` only if it worked.

Placeholders, filled by ``Attack.script(context)``: ``{host_pid}`` (a live host process),
``{host_port}`` (a host loopback port that is listening), ``{other_workspace}`` (another
workspace's host path), ``{repo_dir}`` (this repository), ``{canary}`` (a value only in the
host's environment).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ATTACKS", "ESCAPED", "Attack", "AttackContext"]

ESCAPED = b"ESCAPED"


@dataclass(frozen=True)
class AttackContext:
    host_pid: int
    host_port: int
    other_workspace: str
    repo_dir: str
    canary: str


@dataclass(frozen=True)
class Attack:
    name: str
    shell: str
    max_duration_s: float = 10.0

    def script(self, context: AttackContext) -> str:
        return self.shell.format(**vars(context))


_PY = "python3 -c"
ATTACKS: tuple[Attack, ...] = (
    Attack("read /etc/shadow", "grep -q root: /etc/shadow 2>/dev/null && echo ESCAPED"),
    Attack("read the repo", "test -e {repo_dir}/pyproject.toml && echo ESCAPED"),
    Attack("list /root", "ls -A /root 2>/dev/null | grep -q . && echo ESCAPED"),
    Attack("read another workspace", "ls -A {other_workspace} 2>/dev/null && echo ESCAPED"),
    Attack(
        "write outside /workspace and /tmp",
        "for d in / /etc /usr /usr/bin /var /home /root /opt /dev /proc /run /sys; do "
        "touch $d/.vibecode-escape 2>/dev/null && echo ESCAPED $d; done; true",
    ),
    Attack(
        "connect to a host loopback port",
        f"{_PY} \"import socket; s = socket.create_connection(('127.0.0.1', {{host_port}}), 2); "
        "print('ESCAPED')\" 2>/dev/null",
        max_duration_s=3.0,
    ),
    Attack(
        "reach an outside address",
        f"{_PY} \"import socket; s = socket.create_connection(('1.1.1.1', 53), 2); "
        "print('ESCAPED')\" 2>/dev/null",
        max_duration_s=3.0,
    ),
    Attack("resolve a name", "getent hosts example.com >/dev/null 2>&1 && echo ESCAPED", 3.0),
    Attack(
        "see a host process",
        "test -d /proc/{host_pid}/fd && grep -qa pytest /proc/{host_pid}/cmdline 2>/dev/null && echo ESCAPED",
    ),
    Attack(
        "signal a host process",
        "kill -0 {host_pid} 2>/dev/null && grep -qa pytest /proc/{host_pid}/cmdline 2>/dev/null && echo ESCAPED",
    ),
    Attack(
        "read the host's environment",
        "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -q {canary} && echo ESCAPED; true",
    ),
    Attack(
        "write /proc/sys",
        "echo '|/bin/sh -c id' > /proc/sys/kernel/core_pattern 2>/dev/null && echo ESCAPED",
    ),
    Attack(
        "mount a tmpfs", "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m 2>/dev/null && echo ESCAPED"
    ),
    Attack("unshare a user namespace", "unshare -U true 2>/dev/null && echo ESCAPED"),
    Attack("unshare a mount namespace", "unshare -rm true 2>/dev/null && echo ESCAPED"),
    Attack(
        "ptrace",
        f'{_PY} "import ctypes; libc = ctypes.CDLL(None); '
        "print('ESCAPED' if libc.ptrace(0, 0, 0, 0) == 0 else 'refused')\"",
    ),
    Attack(
        "a seccomp-blocked call (keyctl)",
        f'{_PY} "import ctypes; libc = ctypes.CDLL(None); '
        "print('ESCAPED' if libc.syscall(250, 0, -3, 0) >= 0 else 'refused')\"",
    ),
    Attack(
        "clone with namespace flags",
        f'{_PY} "import ctypes; libc = ctypes.CDLL(None); '
        "pid = libc.syscall(56, 0x40000000 | 17, 0, 0, 0, 0); "  # clone(CLONE_NEWNET | SIGCHLD)
        "print('ESCAPED' if pid >= 0 else 'refused')\"",
    ),
    Attack(
        "symlink to a host file",
        "ln -sf /etc/shadow /workspace/link && grep -q root: /workspace/link 2>/dev/null "
        "&& echo ESCAPED; ln -sf {repo_dir} /workspace/repo && ls /workspace/repo/ "
        "2>/dev/null | grep -q pyproject && echo ESCAPED; true",
    ),
    Attack(
        "hard link to a host file",
        "ln /usr/bin/python3 /workspace/hard 2>/dev/null && echo ESCAPED; "
        "ln /etc/ld.so.cache /tmp/hard 2>/dev/null && echo ESCAPED; true",
    ),
    Attack("load a kernel module", "modprobe dummy 2>/dev/null && echo ESCAPED; true"),
    Attack(
        "become root",
        "su -c true root </dev/null 2>/dev/null && echo ESCAPED; test $(id -u) = 0 && echo ESCAPED; true",
    ),
)
