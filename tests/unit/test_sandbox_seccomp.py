"""The hand-assembled seccomp program, checked by a tiny classic-BPF interpreter."""

from __future__ import annotations

import errno
import platform
import struct

import pytest

from sandbox.bubblewrap import seccomp

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 table only")


def run_filter(program: bytes, *, nr: int, arch: int = seccomp.AUDIT_ARCH_X86_64, args: tuple[int, ...] = ()) -> int:  # fmt: skip
    code = [struct.unpack_from("<HBBI", program, offset) for offset in range(0, len(program), 8)]
    full_args = (*args, 0, 0, 0, 0, 0, 0)[:6]
    data = struct.pack("<iIQ6Q", nr, arch, 0, *full_args)
    acc, pc = 0, 0
    while True:
        op, jt, jf, k = code[pc]
        if op == seccomp.LD_W_ABS:
            (acc,) = struct.unpack_from("<I", data, k)
            pc += 1
        elif op == seccomp.RET_K:
            return k
        else:
            taken = {
                seccomp.JEQ_K: acc == k,
                seccomp.JGE_K: acc >= k,
                seccomp.JSET_K: acc & k != 0,
            }[op]
            pc += 1 + (jt if taken else jf)


PROGRAM = seccomp.filter_program()
EPERM = seccomp.RET_ERRNO | errno.EPERM


@pytest.mark.parametrize("name", ["ptrace", "mount", "unshare", "setns", "keyctl", "bpf"])
def test_dangerous_calls_get_eperm(name: str) -> None:
    assert run_filter(PROGRAM, nr=seccomp.BLOCKED_SYSCALLS[name]) == EPERM


def test_ordinary_calls_are_allowed() -> None:
    for nr in (0, 1, 2, 57, 59, 60, 231):  # read write open fork execve exit exit_group
        assert run_filter(PROGRAM, nr=nr) == seccomp.RET_ALLOW


def test_clone_is_allowed_without_namespace_flags_only() -> None:
    fork_flags = 0x01200011  # CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD
    assert run_filter(PROGRAM, nr=seccomp.CLONE, args=(fork_flags,)) == seccomp.RET_ALLOW
    for flag in (0x10000000, 0x40000000, 0x00020000, 0x80):  # NEWUSER NEWNET NEWNS NEWTIME
        assert run_filter(PROGRAM, nr=seccomp.CLONE, args=(fork_flags | flag,)) == EPERM
    assert run_filter(PROGRAM, nr=seccomp.CLONE3) == seccomp.RET_ERRNO | errno.ENOSYS


def test_terminal_injection_and_foreign_abis() -> None:
    assert run_filter(PROGRAM, nr=seccomp.IOCTL, args=(0, seccomp.TIOCSTI)) == EPERM
    assert run_filter(PROGRAM, nr=seccomp.IOCTL, args=(0, 0x5401)) == seccomp.RET_ALLOW
    assert run_filter(PROGRAM, nr=1, arch=0x40000003) == seccomp.RET_KILL_PROCESS  # i386
    assert run_filter(PROGRAM, nr=0x40000001) == seccomp.RET_KILL_PROCESS  # x32
