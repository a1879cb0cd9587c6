"""What every backend shares: a warm sandbox is one supervisor process.

``SupervisedBackend`` implements the whole ``SandboxBackend`` port on top of a
``SupervisorChannel``; a subclass says how to launch, attach a workspace, and kill. A launch
may also hand over an *exec channel* (a socket to the supervisor's exec server): commands go
there when it is free, and through the main channel otherwise.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import socket
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sandbox.channel import ChannelProtocol, Frame, SupervisorChannel, pump
from sandbox.errors import SandboxCrashed, SandboxCreateFailed, SandboxNotFound
from sandbox.types import (
    ExecEvent,
    ExecRequest,
    ExecResult,
    KilledReason,
    OutputChunk,
    ProcessInfo,
    ProcessLogs,
    SandboxHealth,
    SandboxInfo,
    SandboxSpec,
    StartRequest,
)

__all__ = ["Launched", "RunningSandbox", "SupervisedBackend", "new_sandbox_id"]

HOST_TIMEOUT_GRACE_S = 5.0
"""How long past a command's own timeout the host waits before declaring the sandbox hung."""
STDERR_TAIL_BYTES = 4096


def new_sandbox_id() -> str:
    return "sbx-" + uuid.uuid4().hex[:16]


@dataclass
class Launched:
    sandbox_id: str
    process: asyncio.subprocess.Process
    limit_enforcement: str
    exec_socket: socket.socket | None = None  # the host's end of the exec channel


@dataclass
class RunningSandbox:
    info: SandboxInfo
    process: asyncio.subprocess.Process
    channel: SupervisorChannel
    exec_channel: SupervisorChannel | None = None
    exec_busy: bool = False
    stderr_tail: bytearray = field(default_factory=bytearray)
    workspace_dir: Path | None = None
    quota_exceeded: bool = False
    backend_state: Any = None


def _decode(frame: Frame, key: str) -> bytes:
    data = frame.get(key)
    return base64.b64decode(str(data)) if data else b""


class SupervisedBackend(abc.ABC):
    name: str = "supervised"
    create_timeout_s: float = 30.0
    """How long a new sandbox may take to answer its first ping before ``create`` gives up."""

    def __init__(self) -> None:
        self._sandboxes: dict[str, RunningSandbox] = {}
        self._group: asyncio.TaskGroup | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            for sandbox_id in list(self._sandboxes):
                await self.destroy(sandbox_id)
        finally:
            group, self._group = self._group, None
            try:
                if group is not None:
                    await group.__aexit__(exc_type, exc, tb)
            finally:
                await self._closed()

    async def _closed(self) -> None:  # noqa: B027 - optional hook, nothing to release here
        """Once every sandbox and task is gone: release what the backend itself holds."""

    def _spawn(self, coro: Any) -> None:
        if self._group is None:
            coro.close()
            raise RuntimeError(f"use the {self.name} backend as `async with`")
        self._group.create_task(coro)

    @abc.abstractmethod
    async def _launch(self, spec: SandboxSpec) -> tuple[Launched, Any]:
        """Start the supervisor (naming the sandbox, see ``new_sandbox_id``); return it and
        backend state for the other hooks."""

    @abc.abstractmethod
    async def _ready(self, sandbox: RunningSandbox) -> None:
        """Called once the supervisor answered its first ping."""

    @abc.abstractmethod
    async def _kill(self, sandbox: RunningSandbox) -> None:
        """Kill the sandbox and everything in it, then release what ``_launch`` took."""

    @abc.abstractmethod
    async def _attach(self, sandbox: RunningSandbox, workspace_dir: Path) -> None: ...

    @abc.abstractmethod
    async def _detach(self, sandbox: RunningSandbox) -> None: ...

    def _killed_reason(self, sandbox: RunningSandbox, frame: Frame) -> KilledReason | None:
        """Why the platform ended this command, if it did (backends add memory, quota...)."""
        if frame.get("timed_out"):
            return "timeout"
        if sandbox.quota_exceeded and frame.get("exit_code") == -9:
            return "workspace_quota"
        exit_code = frame.get("exit_code")
        # A signal death shows as -N, or as 128+N when a shell ran the command.
        cpu_limit_s = sandbox.info.limits.cpu_time_s
        if exit_code in (-24, 152):
            return "cpu_time"  # SIGXCPU: only the soft RLIMIT_CPU sends it
        # SIGKILL at the hard RLIMIT_CPU; rusage granularity can report a little under the limit.
        if exit_code in (-9, 137) and float(frame.get("cpu_s", 0)) >= cpu_limit_s * 0.8:
            return "cpu_time"
        if exit_code in (-25, 153):  # SIGXFSZ: RLIMIT_FSIZE
            return "file_size"
        return None

    async def create(self, spec: SandboxSpec) -> SandboxInfo:
        launched, state = await self._launch(spec)
        sandbox_id = launched.sandbox_id
        process = launched.process
        assert process.stdout is not None
        assert process.stdin is not None
        channel = SupervisorChannel(sandbox_id, process.stdin)
        info = SandboxInfo(
            sandbox_id=sandbox_id,
            backend=self.name,
            created_at=time.time(),
            limits=spec.limits,
            workspace_dir=None,
            network=spec.network,
            limit_enforcement=launched.limit_enforcement,
            labels=spec.labels,
        )
        sandbox = RunningSandbox(info, process, channel, backend_state=state)
        self._sandboxes[sandbox_id] = sandbox
        self._spawn(pump(process.stdout, channel))
        self._spawn(self._drain_stderr(sandbox))
        try:
            try:
                async with asyncio.timeout(self.create_timeout_s):
                    if launched.exec_socket is not None:
                        sandbox.exec_channel = await _open_exec_channel(
                            sandbox_id, launched.exec_socket
                        )
                    await self._ping(sandbox)
            except TimeoutError:
                raise SandboxCreateFailed(
                    self.name, f"the sandbox did not answer within {self.create_timeout_s:g} s"
                ) from None
            await self._ready(sandbox)
            if spec.workspace_dir is not None:
                await self.attach_workspace(sandbox_id, spec.workspace_dir)
        except BaseException:
            await self.destroy(sandbox_id)
            raise
        return self._sandboxes[sandbox_id].info

    async def _ping(self, sandbox: RunningSandbox) -> Frame:
        try:
            return await sandbox.channel.call("ping")
        except SandboxCrashed as exc:
            tail = sandbox.stderr_tail.decode(errors="replace").strip()[-500:]
            raise SandboxCrashed(sandbox.info.sandbox_id, f"{exc.reason}: {tail}") from exc

    async def _drain_stderr(self, sandbox: RunningSandbox) -> None:
        stream = sandbox.process.stderr
        if stream is None:
            return
        while chunk := await stream.read(4096):
            sandbox.stderr_tail.extend(chunk)
            del sandbox.stderr_tail[:-STDERR_TAIL_BYTES]

    def _get(self, sandbox_id: str) -> RunningSandbox:
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None:
            raise SandboxNotFound(sandbox_id)
        return sandbox

    async def destroy(self, sandbox_id: str) -> bool:
        sandbox = self._sandboxes.pop(sandbox_id, None)
        if sandbox is None:
            return False
        try:
            await self._kill(sandbox)
        finally:
            await sandbox.channel.aclose()
            if sandbox.exec_channel is not None:
                await sandbox.exec_channel.aclose()
        return True

    async def health(self, sandbox_id: str) -> SandboxHealth:
        sandbox = self._get(sandbox_id)
        enforcement = sandbox.info.limit_enforcement
        try:
            pong = await asyncio.wait_for(sandbox.channel.call("ping"), HOST_TIMEOUT_GRACE_S)
        except (SandboxCrashed, TimeoutError):
            return SandboxHealth(alive=False, limit_enforcement=enforcement)
        return SandboxHealth(
            alive=True,
            running_processes=int(pong.get("running", 0)),
            memory_bytes=self._memory_bytes(sandbox),
            limit_enforcement=enforcement,
        )

    def _memory_bytes(self, sandbox: RunningSandbox) -> int | None:
        return None

    # --- workspace ------------------------------------------------------------------------

    async def attach_workspace(self, sandbox_id: str, workspace_dir: Path) -> None:
        sandbox = self._get(sandbox_id)
        if sandbox.workspace_dir is not None:
            await self.detach_workspace(sandbox_id)
        await self._attach(sandbox, workspace_dir)
        sandbox.workspace_dir = workspace_dir
        sandbox.quota_exceeded = False
        sandbox.info = sandbox.info.model_copy(update={"workspace_dir": workspace_dir})

    async def detach_workspace(self, sandbox_id: str) -> None:
        sandbox = self._get(sandbox_id)
        if sandbox.workspace_dir is None:
            return
        await sandbox.channel.call("reset", keep_scratch=True)
        await self._detach(sandbox)
        sandbox.workspace_dir = None
        sandbox.info = sandbox.info.model_copy(update={"workspace_dir": None})

    async def reset(self, sandbox_id: str) -> None:
        sandbox = self._get(sandbox_id)
        await sandbox.channel.call("reset")
        if sandbox.workspace_dir is not None:
            await self._detach(sandbox)
            sandbox.workspace_dir = None
            sandbox.info = sandbox.info.model_copy(update={"workspace_dir": None})

    # --- commands -------------------------------------------------------------------------

    def _exec_fields(self, sandbox: RunningSandbox, request: ExecRequest) -> dict[str, Any]:
        return {
            "argv": request.command(),
            "env": request.env,
            "cwd": request.relative_cwd(),
            "stdin": base64.b64encode(request.stdin).decode(),
            "timeout_s": request.timeout_s or sandbox.info.limits.exec_timeout_s,
        }

    def _take_exec_channel(self, sandbox: RunningSandbox) -> SupervisorChannel:
        """The exec channel when it is free (give it back with ``_return_exec_channel``), else
        the main one: the exec server runs one command at a time, the front any number."""
        fast = sandbox.exec_channel
        if fast is not None and not sandbox.exec_busy and fast.closed_reason is None:
            sandbox.exec_busy = True
            return fast
        return sandbox.channel

    def _return_exec_channel(self, sandbox: RunningSandbox, channel: SupervisorChannel) -> None:
        """Free once its command ended: a caller may stop listening before (an abandoned
        stream, a cancelled call) while the exec server still runs it."""
        if channel is sandbox.exec_channel:
            channel.when_idle(lambda: setattr(sandbox, "exec_busy", False))

    async def exec(self, sandbox_id: str, request: ExecRequest) -> ExecResult:
        sandbox = self._get(sandbox_id)
        fields = self._exec_fields(sandbox, request)
        channel = self._take_exec_channel(sandbox)
        try:
            async with asyncio.timeout(fields["timeout_s"] + HOST_TIMEOUT_GRACE_S):
                frame = await channel.call("exec", stream=False, **fields)
        except TimeoutError:
            await self.destroy(sandbox_id)  # The supervisor is hung or hijacked.
            raise SandboxCrashed(sandbox_id, "no answer past the timeout") from None
        finally:
            self._return_exec_channel(sandbox, channel)
        return self._result(
            sandbox, frame, stdout=_decode(frame, "stdout"), stderr=_decode(frame, "stderr")
        )

    async def exec_stream(self, sandbox_id: str, request: ExecRequest) -> AsyncIterator[ExecEvent]:
        sandbox = self._get(sandbox_id)
        fields = self._exec_fields(sandbox, request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + fields["timeout_s"] + HOST_TIMEOUT_GRACE_S
        channel = self._take_exec_channel(sandbox)
        frames: AsyncGenerator[Frame, None] = channel.stream("exec", stream=True, **fields)
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        frame = await anext(frames)
                except TimeoutError:
                    await self.destroy(sandbox_id)  # The supervisor is hung or hijacked.
                    raise SandboxCrashed(sandbox_id, "no answer past the timeout") from None
                if frame["type"] == "chunk":
                    yield OutputChunk(stream=frame["stream"], data=_decode(frame, "data"))
                    continue
                yield self._result(sandbox, frame)
                return
        finally:
            self._return_exec_channel(sandbox, channel)
            await frames.aclose()

    def _result(
        self, sandbox: RunningSandbox, frame: Frame, stdout: bytes = b"", stderr: bytes = b""
    ) -> ExecResult:
        return ExecResult(
            exit_code=int(frame["exit_code"]),
            stdout=stdout,
            stderr=stderr,
            duration_ms=float(frame["duration_ms"]),
            timed_out=bool(frame.get("timed_out")),
            truncated=bool(frame.get("truncated")),
            cpu_s=float(frame.get("cpu_s", 0.0)),
            max_rss_bytes=int(frame.get("max_rss_bytes", 0)),
            killed_reason=self._killed_reason(sandbox, frame),
        )

    # --- processes ------------------------------------------------------------------------

    async def start_process(self, sandbox_id: str, request: StartRequest) -> ProcessInfo:
        sandbox = self._get(sandbox_id)
        frame = await sandbox.channel.call(
            "start",
            argv=request.command(),
            env=request.env,
            cwd=request.relative_cwd(),
            pty=request.pty,
            cols=request.cols,
            rows=request.rows,
        )
        return _process_info(frame)

    async def list_processes(self, sandbox_id: str) -> list[ProcessInfo]:
        frame = await self._get(sandbox_id).channel.call("list")
        return [_process_info(item) for item in frame["processes"]]

    async def read_logs(self, sandbox_id: str, process_id: str, offset: int = 0) -> ProcessLogs:
        channel = self._get(sandbox_id).channel
        frame = await channel.call("logs", process_id=process_id, offset=offset)
        return ProcessLogs(
            data=_decode(frame, "data"),
            offset=int(frame["offset"]),
            next_offset=int(frame["next_offset"]),
            running=bool(frame["running"]),
            exit_code=frame.get("exit_code"),
        )

    async def follow_process(
        self, sandbox_id: str, process_id: str, offset: int = 0
    ) -> AsyncIterator[bytes]:
        channel = self._get(sandbox_id).channel
        async for frame in channel.stream("follow", process_id=process_id, offset=offset):
            if frame["type"] == "chunk":
                yield _decode(frame, "data")

    async def write_stdin(self, sandbox_id: str, process_id: str, data: bytes) -> None:
        channel = self._get(sandbox_id).channel
        await channel.call("input", process_id=process_id, data=base64.b64encode(data).decode())

    async def resize_terminal(
        self, sandbox_id: str, process_id: str, *, cols: int, rows: int
    ) -> None:
        channel = self._get(sandbox_id).channel
        await channel.call("resize", process_id=process_id, cols=cols, rows=rows)

    async def kill_process(self, sandbox_id: str, process_id: str) -> bool:
        frame = await self._get(sandbox_id).channel.call("kill", process_id=process_id)
        return bool(frame["killed"])


async def _open_exec_channel(sandbox_id: str, sock: socket.socket) -> SupervisorChannel:
    try:
        sock.setblocking(False)
        _, protocol = await asyncio.get_running_loop().create_connection(ChannelProtocol, sock=sock)
    except BaseException:
        sock.close()
        raise
    channel = SupervisorChannel(sandbox_id, protocol)
    protocol.attach(channel)
    return channel


def _process_info(frame: Frame) -> ProcessInfo:
    return ProcessInfo(
        process_id=str(frame["process_id"]),
        pid=int(frame["pid"]),
        argv=tuple(frame["argv"]),
        pty=bool(frame["pty"]),
        running=bool(frame["running"]),
        exit_code=frame.get("exit_code"),
        started_at=float(frame["started_at"]),
    )
