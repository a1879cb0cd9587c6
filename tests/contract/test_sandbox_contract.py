"""One behaviour contract for every SandboxBackend this machine can run (fake, bubblewrap,
and any backend added to ``sandbox_backends.BACKEND_FACTORIES``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sandbox import (
    ExecRequest,
    ExecResult,
    OutputChunk,
    ProcessNotFound,
    SandboxBackend,
    SandboxLimits,
    SandboxNotFound,
    SandboxSpec,
    StartRequest,
)
from tests.contract.sandbox_backends import (
    BACKEND_FACTORIES,
    REAL_BACKENDS,
    cleanup_run_leftovers,
    open_test_backend,
)


@pytest.fixture(scope="module", autouse=True)
def _sandbox_leftovers() -> Iterator[None]:
    yield
    cleanup_run_leftovers()


@pytest.fixture(params=sorted(BACKEND_FACTORIES))
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[SandboxBackend]:
    async with open_test_backend(request.param) as opened:
        yield opened


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "README.md").write_text("hello from the workspace\n")
    (root / "src").mkdir()
    return root


@pytest.fixture
async def sandbox_id(backend: SandboxBackend, workspace: Path) -> str:
    info = await backend.create(SandboxSpec(workspace_dir=workspace, env={"GREETING": "hi"}))
    return info.sandbox_id


async def run(backend: SandboxBackend, sandbox_id: str, shell: str, **fields: object) -> ExecResult:
    return await backend.exec(sandbox_id, ExecRequest(shell=shell, **fields))  # type: ignore[arg-type]


async def test_failing_command_is_a_value(backend: SandboxBackend, sandbox_id: str) -> None:
    result = await run(backend, sandbox_id, "echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    assert not result.timed_out
    assert not result.truncated
    assert result.killed_reason is None
    assert result.duration_ms > 0


async def test_argv_stdin_env_and_cwd(backend: SandboxBackend, sandbox_id: str) -> None:
    cat = await backend.exec(sandbox_id, ExecRequest(argv=("cat",), stdin=b"x" * 200_000))
    assert cat.stdout == b"x" * 200_000
    env = await run(backend, sandbox_id, 'echo "$GREETING $EXTRA"', env={"EXTRA": "there"})
    assert env.stdout == b"hi there\n"
    where = await run(backend, sandbox_id, "pwd; cat ../README.md", cwd="src")
    assert where.stdout.splitlines()[0].endswith(b"/src")
    assert b"hello from the workspace" in where.stdout


async def test_missing_command_exits_127(backend: SandboxBackend, sandbox_id: str) -> None:
    result = await backend.exec(sandbox_id, ExecRequest(argv=("no-such-program-xyz",)))
    assert result.exit_code == 127
    assert b"no-such-program-xyz" in result.stderr


async def test_writes_land_in_the_workspace(
    backend: SandboxBackend, sandbox_id: str, workspace: Path
) -> None:
    result = await run(backend, sandbox_id, "echo made > src/new.txt && mkdir -p a/b")
    assert result.exit_code == 0
    assert (workspace / "src" / "new.txt").read_text() == "made\n"
    assert (workspace / "a" / "b").is_dir()


async def test_timeout_kills_the_command(backend: SandboxBackend, sandbox_id: str) -> None:
    started = time.monotonic()
    result = await run(backend, sandbox_id, "echo begun; sleep 30", timeout_s=0.5)
    assert result.timed_out
    assert result.killed_reason == "timeout"
    assert result.stdout == b"begun\n"
    assert time.monotonic() - started < 5


async def test_output_is_capped_and_drained(backend: SandboxBackend, workspace: Path) -> None:
    limits = SandboxLimits(output_bytes=64 * 1024)
    info = await backend.create(SandboxSpec(workspace_dir=workspace, limits=limits))
    result = await run(backend, info.sandbox_id, "head -c 20000000 /dev/zero; echo done >&2")
    assert result.exit_code == 0
    assert result.truncated
    assert len(result.stdout) == 64 * 1024
    assert result.stderr == b"done\n"


async def test_leftover_daemons_die_with_their_command(
    backend: SandboxBackend, sandbox_id: str
) -> None:
    daemon = "(setsid sh -c 'echo $$ > $TMPDIR/daemon.pid; exec sleep 60' &) ; sleep 0.2"
    assert (await run(backend, sandbox_id, daemon)).exit_code == 0
    check = await run(backend, sandbox_id, "kill -0 $(cat $TMPDIR/daemon.pid) 2>/dev/null")
    assert check.exit_code != 0, "the daemon outlived the command that started it"


async def test_killing_the_process_running_a_command_ends_only_that_command(
    backend: SandboxBackend, sandbox_id: str
) -> None:
    suicide = "echo $$ > $TMPDIR/victim.pid; kill -9 $PPID; sleep 30"
    result = await run(backend, sandbox_id, suicide, timeout_s=20)
    assert result.exit_code == -9
    assert not result.timed_out
    check = await run(backend, sandbox_id, "kill -0 $(cat $TMPDIR/victim.pid) 2>/dev/null")
    assert check.exit_code != 0, "the command outlived the process that ran it"
    assert (await run(backend, sandbox_id, "echo still here")).stdout == b"still here\n"


async def test_streaming_exec_yields_chunks_then_result(
    backend: SandboxBackend, sandbox_id: str
) -> None:
    events = [
        event
        async for event in backend.exec_stream(
            sandbox_id, ExecRequest(shell="echo one; sleep 0.2; echo two >&2; exit 4")
        )
    ]
    chunks = [event for event in events if isinstance(event, OutputChunk)]
    assert b"".join(c.data for c in chunks if c.stream == "stdout") == b"one\n"
    assert b"".join(c.data for c in chunks if c.stream == "stderr") == b"two\n"
    assert isinstance(events[-1], ExecResult)
    assert events[-1].exit_code == 4


async def test_commands_run_while_an_abandoned_stream_still_runs(
    backend: SandboxBackend, sandbox_id: str
) -> None:
    stream = backend.exec_stream(sandbox_id, ExecRequest(shell="echo one; sleep 1; echo two"))
    first = await anext(stream)
    assert isinstance(first, OutputChunk)
    await stream.aclose()  # A client that went away; the command itself runs on.
    assert (await run(backend, sandbox_id, "echo next")).stdout == b"next\n"
    await asyncio.sleep(1.2)
    assert (await run(backend, sandbox_id, "echo later")).stdout == b"later\n"


async def test_concurrent_commands(backend: SandboxBackend, sandbox_id: str) -> None:
    results = await asyncio.gather(
        *(run(backend, sandbox_id, f"sleep 0.3; echo {n}") for n in range(6))
    )
    assert [r.stdout for r in results] == [f"{n}\n".encode() for n in range(6)]


async def test_usage_is_reported(backend: SandboxBackend, sandbox_id: str) -> None:
    busy = "python3 -c 'b = bytearray(40_000_000); n = 0\nwhile n < 3_000_000: n += 1'"
    result = await run(backend, sandbox_id, busy)
    assert result.exit_code == 0
    assert result.cpu_s > 0.05
    assert result.max_rss_bytes > 40_000_000


async def test_processes_start_list_log_and_kill(backend: SandboxBackend, sandbox_id: str) -> None:
    started = await backend.start_process(
        sandbox_id, StartRequest(shell="echo serving; echo oops >&2; sleep 60")
    )
    assert started.running
    await asyncio.sleep(0.3)
    logs = await backend.read_logs(sandbox_id, started.process_id)
    assert sorted(logs.data.splitlines()) == [b"oops", b"serving"]
    assert logs.running
    later = await backend.read_logs(sandbox_id, started.process_id, offset=logs.next_offset)
    assert later.data == b""
    listed = await backend.list_processes(sandbox_id)
    assert [p.process_id for p in listed] == [started.process_id]
    assert await backend.kill_process(sandbox_id, started.process_id)
    await asyncio.sleep(0.2)
    (ended,) = await backend.list_processes(sandbox_id)
    assert not ended.running
    assert ended.exit_code is not None
    assert not await backend.kill_process(sandbox_id, started.process_id)
    with pytest.raises(ProcessNotFound):
        await backend.read_logs(sandbox_id, "p999")


async def test_terminal_on_a_pty(backend: SandboxBackend, sandbox_id: str) -> None:
    shell = await backend.start_process(sandbox_id, StartRequest(argv=("/bin/sh",), pty=True))
    await backend.resize_terminal(sandbox_id, shell.process_id, cols=100, rows=40)
    await backend.write_stdin(sandbox_id, shell.process_id, b"stty size; test -t 0 && echo TTY\n")
    await backend.write_stdin(sandbox_id, shell.process_id, b"exit\n")
    output = b""
    async with asyncio.timeout(10):
        async for chunk in backend.follow_process(sandbox_id, shell.process_id):
            output += chunk
    assert b"40 100" in output
    assert b"TTY" in output


async def test_attach_detach_and_reset(
    backend: SandboxBackend, workspace: Path, tmp_path: Path
) -> None:
    info = await backend.create(SandboxSpec())
    sid = info.sandbox_id
    assert (await run(backend, sid, "ls -A")).stdout == b""
    await backend.attach_workspace(sid, workspace)
    assert (await run(backend, sid, "cat README.md")).stdout == b"hello from the workspace\n"
    await run(backend, sid, "echo scratch > $TMPDIR/left-behind")
    await backend.start_process(sid, StartRequest(shell="sleep 60"))
    await backend.reset(sid)
    assert await backend.list_processes(sid) == []
    after = await run(backend, sid, "ls -A; ls $TMPDIR | grep left-behind")
    assert after.stdout == b""
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.txt").write_text("second lease\n")
    await backend.attach_workspace(sid, other)
    assert (await run(backend, sid, "cat mine.txt")).stdout == b"second lease\n"
    await backend.detach_workspace(sid)
    assert (await run(backend, sid, "ls -A")).stdout == b""


async def test_health_and_destroy(backend: SandboxBackend, sandbox_id: str) -> None:
    health = await backend.health(sandbox_id)
    assert health.alive
    assert await backend.destroy(sandbox_id)
    assert not await backend.destroy(sandbox_id)
    with pytest.raises(SandboxNotFound):
        await run(backend, sandbox_id, "true")
    with pytest.raises(SandboxNotFound):
        await backend.health(sandbox_id)


@pytest.mark.parametrize("name", REAL_BACKENDS)
async def test_python_answers_to_python_and_python3(name: str, workspace: Path) -> None:
    """What people and models type: `python` runs Python 3 in every isolated sandbox."""
    async with open_test_backend(name) as opened:
        info = await opened.create(SandboxSpec(workspace_dir=workspace))
        for command in ("python", "python3"):
            result = await run(opened, info.sandbox_id, f"{command} -c 'print(6 * 7)'")
            assert (result.exit_code, result.stdout) == (0, b"42\n"), result.stderr
