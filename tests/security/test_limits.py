"""Every limit is proven by hitting it, while the host stays healthy (see conftest ``host``)."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path

import pytest

from sandbox import ExecRequest, SandboxBackend, SandboxLimits, SandboxSpec, StartRequest
from tests.security.conftest import Host

MIB = 1024 * 1024
pytestmark = pytest.mark.usefixtures("host")


async def sandbox(backend: SandboxBackend, workspace: Path, **limits: int | float) -> str:
    spec = SandboxSpec(workspace_dir=workspace, limits=SandboxLimits(**limits))  # type: ignore[arg-type]
    return (await backend.create(spec)).sandbox_id


async def test_fork_bomb_is_contained_by_pids(
    real_backend: SandboxBackend, workspace: Path
) -> None:
    sid = await sandbox(real_backend, workspace, pids=64)
    counter = (
        'python3 -c "import os, time\nn = 0\ntry:\n  while True:\n'
        "    if os.fork() == 0: time.sleep(30); os._exit(0)\n    n += 1\n"
        'except OSError: print(n)"'
    )
    result = await real_backend.exec(sid, ExecRequest(shell=counter, timeout_s=10))
    assert not result.timed_out
    assert 0 < int(result.stdout) < 64
    bomb = await real_backend.exec(sid, ExecRequest(shell=":(){ :|:& };:", timeout_s=2))
    assert bomb.timed_out or bomb.exit_code != 0
    after = await real_backend.exec(sid, ExecRequest(shell="echo alive"))
    assert after.stdout == b"alive\n", "the sandbox did not recover from the fork bomb"


async def test_memory_bomb_is_killed(real_backend: SandboxBackend, workspace: Path) -> None:
    sid = await sandbox(real_backend, workspace, memory_bytes=64 * MIB)
    bomb = 'python3 -c "chunks = []\nwhile True: chunks.append(bytearray(8 << 20))"'
    result = await real_backend.exec(sid, ExecRequest(shell=bomb, timeout_s=20))
    assert result.exit_code != 0
    assert not result.timed_out
    assert result.killed_reason == "memory" or b"MemoryError" in result.stderr
    assert result.max_rss_bytes < 80 * MIB
    assert (await real_backend.exec(sid, ExecRequest(shell="echo ok"))).stdout == b"ok\n"


async def test_tmp_fill_hits_its_cap(real_backend: SandboxBackend, workspace: Path) -> None:
    sid = await sandbox(real_backend, workspace, tmp_bytes=4 * MIB)
    fill = "head -c 20000000 /dev/zero > /tmp/fill; echo rc=$?; stat -c %s /tmp/fill"
    result = await real_backend.exec(sid, ExecRequest(shell=fill))
    assert b"rc=1" in result.stdout
    assert b"No space left" in result.stderr
    assert int(result.stdout.split()[-1]) <= 4 * MIB
    shm = await real_backend.exec(sid, ExecRequest(shell="head -c 20000000 /dev/zero > /dev/shm/f"))
    assert shm.exit_code != 0


async def test_file_size_limit(real_backend: SandboxBackend, workspace: Path) -> None:
    sid = await sandbox(real_backend, workspace, file_size_bytes=2 * MIB)
    result = await real_backend.exec(sid, ExecRequest(shell="head -c 5000000 /dev/zero > big"))
    assert result.exit_code != 0
    assert (workspace / "big").stat().st_size <= 2 * MIB


async def test_workspace_fill_is_stopped(real_backend: SandboxBackend, workspace: Path) -> None:
    sid = await sandbox(
        real_backend, workspace, workspace_disk_bytes=8 * MIB, file_size_bytes=2 * MIB
    )
    fill = "i=0; while true; do i=$((i+1)); head -c 1000000 /dev/zero > f$i; sleep 0.02; done"
    result = await real_backend.exec(sid, ExecRequest(shell=fill, timeout_s=20))
    assert result.killed_reason == "workspace_quota"
    used = await asyncio.to_thread(lambda: sum(p.stat().st_size for p in workspace.iterdir()))
    assert used < 8 * MIB + 2 * MIB * 15  # Bounded by the check interval (0.2 s in tests).


async def test_output_flood_is_truncated_not_hung(
    real_backend: SandboxBackend, workspace: Path
) -> None:
    sid = await sandbox(real_backend, workspace, output_bytes=1 * MIB)
    started = time.monotonic()
    result = await real_backend.exec(
        sid, ExecRequest(shell="head -c 300000000 /dev/zero; head -c 300000000 /dev/zero >&2")
    )
    assert result.exit_code == 0
    assert result.truncated
    assert len(result.stdout) == len(result.stderr) == MIB
    assert time.monotonic() - started < 15


async def test_infinite_loop_times_out(real_backend: SandboxBackend, workspace: Path) -> None:
    sid = await sandbox(real_backend, workspace)
    result = await real_backend.exec(sid, ExecRequest(shell="while :; do :; done", timeout_s=1))
    assert result.timed_out
    assert result.killed_reason == "timeout"
    assert result.duration_ms < 3000


async def test_cpu_time_limit(real_backend: SandboxBackend, workspace: Path) -> None:
    sid = await sandbox(real_backend, workspace, cpu_time_s=1)
    loop = "python3 -c 'while True: pass'"
    result = await real_backend.exec(sid, ExecRequest(shell=loop, timeout_s=20))
    assert result.killed_reason == "cpu_time"
    assert 0.8 < result.cpu_s < 3


async def test_cpu_quota_limits_a_busy_sandbox(
    real_backend: SandboxBackend, workspace: Path
) -> None:
    sid = await sandbox(real_backend, workspace, cpu_quota_cores=0.25)
    busy = "timeout 1 sh -c 'while :; do :; done'; true"
    result = await real_backend.exec(sid, ExecRequest(shell=busy, timeout_s=10))
    assert result.cpu_s < 0.5, f"used {result.cpu_s:.2f} cpu s in 1 s at a 0.25 core quota"


async def test_daemon_outliving_timeout_is_gone(
    real_backend: SandboxBackend, workspace: Path
) -> None:
    sid = await sandbox(real_backend, workspace)
    daemon = "(setsid sh -c 'while :; do sleep 0.1; done' &) ; sleep 60"
    result = await real_backend.exec(sid, ExecRequest(shell=daemon, timeout_s=0.5))
    assert result.timed_out
    left = await real_backend.exec(sid, ExecRequest(shell="ps -eo args | grep -c '^sleep 0.1$'"))
    assert left.stdout.strip() == b"0"


async def test_destroy_takes_every_process_with_it(
    real_backend: SandboxBackend, workspace: Path, host: Host
) -> None:
    # Durations of this test's own (a leftover of another run or backend must not count).
    first = 10**6 + secrets.randbelow(10**6)
    needles = tuple(f"sleep {first + i}" for i in range(3))
    sid = await sandbox(real_backend, workspace)
    await real_backend.start_process(
        sid, StartRequest(shell=f"(setsid {needles[0]} &); (nohup {needles[1]} &); {needles[2]}")
    )
    await real_backend.exec(sid, ExecRequest(shell="sleep 0.2"))
    assert _host_processes(needles)
    assert await real_backend.destroy(sid)
    # Killing is immediate; the bound only allows for a machine busy with other work.
    deadline = time.monotonic() + 10
    while survivors := _host_processes(needles):
        assert time.monotonic() < deadline, f"sandbox processes survived destroy: {survivors}"
        await asyncio.sleep(0.05)


def _host_processes(needles: tuple[str, ...]) -> list[str]:
    """Host processes running one of ``needles``, with their state and cgroups."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if cmdline.strip() not in needles:
                continue
            status = Path(f"/proc/{name}/status").read_text()
            cgroups = Path(f"/proc/{name}/cgroup").read_text().split()
        except OSError:
            continue
        state = next((line for line in status.splitlines() if line.startswith("State:")), "")
        found.append(f"{name} {cmdline.strip()!r} {state} {cgroups}")
    return found
