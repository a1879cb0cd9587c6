"""Value types of the sandbox port: what callers send and what backends return.

All are frozen pydantic models, validated where they are built (the edge of the library).
Units are in the names; byte strings are raw bytes, never decoded text.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "WORKSPACE_MOUNT",
    "ExecEvent",
    "ExecRequest",
    "ExecResult",
    "KilledReason",
    "LimitEnforcement",
    "OutputChunk",
    "ProcessInfo",
    "ProcessLogs",
    "SandboxHealth",
    "SandboxInfo",
    "SandboxLimits",
    "SandboxSpec",
    "StartRequest",
]

WORKSPACE_MOUNT = "/workspace"
"""Where a sandbox sees its workspace; relative ``cwd`` values resolve under it."""

MIB = 1024 * 1024

KilledReason = Literal["timeout", "memory", "cpu_time", "file_size", "workspace_quota", "reset"]
"""Why the platform (not the command itself) ended a command."""

LimitEnforcement = Literal["cgroup_v1", "cgroup_v2", "rlimit", "none"]
"""How memory and pids limits are enforced: ``rlimit`` is the weaker per-process fallback."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SandboxLimits(_Frozen):
    """Resource limits of one sandbox. Per-command values apply to each command separately."""

    memory_bytes: int = Field(512 * MIB, ge=16 * MIB)
    pids: int = Field(256, ge=8)
    cpu_quota_cores: float = Field(1.0, gt=0.0)
    cpu_time_s: int = Field(120, ge=1, description="CPU seconds per command (RLIMIT_CPU)")
    exec_timeout_s: float = Field(30.0, gt=0.0, description="default wall clock per command")
    tmp_bytes: int = Field(64 * MIB, ge=MIB, description="size of the tmpfs at /tmp")
    workspace_disk_bytes: int = Field(1024 * MIB, ge=MIB)
    file_size_bytes: int = Field(256 * MIB, ge=MIB, description="largest file (RLIMIT_FSIZE)")
    output_bytes: int = Field(MIB, ge=1024, description="bytes kept per stream per command")


class SandboxSpec(_Frozen):
    """What to create. Without ``workspace_dir`` the sandbox starts with an empty /workspace
    (a warm-pool sandbox) and a workspace is attached later with ``attach_workspace``."""

    workspace_dir: Path | None = None
    limits: SandboxLimits = SandboxLimits()
    env: dict[str, str] = Field(default_factory=dict)
    network: bool = False
    labels: dict[str, str] = Field(default_factory=dict)


class _CommandRequest(_Frozen):
    argv: tuple[str, ...] | None = None
    shell: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str = Field(".", description="relative to /workspace, or an absolute path under it")

    @model_validator(mode="after")
    def _one_command(self) -> Self:
        if (self.argv is None) == (self.shell is None):
            raise ValueError("give exactly one of argv or shell")
        if self.argv is not None and not self.argv:
            raise ValueError("argv must not be empty")
        joined = posixpath.normpath(posixpath.join(WORKSPACE_MOUNT, self.cwd))
        if joined != WORKSPACE_MOUNT and not joined.startswith(WORKSPACE_MOUNT + "/"):
            raise ValueError(f"cwd must stay under {WORKSPACE_MOUNT}")
        return self

    def command(self) -> list[str]:
        """The argv to execute (a shell string runs under ``/bin/sh -c``)."""
        if self.argv is not None:
            return list(self.argv)
        return ["/bin/sh", "-c", self.shell or ""]

    def relative_cwd(self) -> str:
        """``cwd`` relative to the workspace root (``.`` for the root itself)."""
        # Validation guarantees ``joined`` is the mount or under it (and relpath would stat).
        joined = posixpath.normpath(posixpath.join(WORKSPACE_MOUNT, self.cwd))
        return joined[len(WORKSPACE_MOUNT) + 1 :] or "."


class ExecRequest(_CommandRequest):
    """One command that runs to completion. Whatever it leaves running is killed when it ends."""

    stdin: bytes = b""
    timeout_s: float | None = Field(None, gt=0.0, description="default: limits.exec_timeout_s")


class StartRequest(_CommandRequest):
    """A long-running process (a dev server, a terminal) that outlives the call."""

    pty: bool = False
    cols: int = Field(80, ge=1, le=1000)
    rows: int = Field(24, ge=1, le=1000)


class OutputChunk(_Frozen):
    stream: Literal["stdout", "stderr"]
    data: bytes


class ExecResult(_Frozen):
    """How a command ended. ``exit_code`` is negative (``-signal``) when a signal killed it."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""
    duration_ms: float
    timed_out: bool = False
    truncated: bool = False
    cpu_s: float = 0.0
    max_rss_bytes: int = 0
    killed_reason: KilledReason | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


ExecEvent = OutputChunk | ExecResult
"""What a streaming exec yields: chunks as they come, then exactly one ``ExecResult``."""


class ProcessInfo(_Frozen):
    process_id: str
    pid: int = Field(description="pid inside the sandbox")
    argv: tuple[str, ...]
    pty: bool
    running: bool
    exit_code: int | None = None
    started_at: float = Field(description="epoch seconds")


class ProcessLogs(_Frozen):
    """Output of a started process from ``offset`` (stdout and stderr merged, or the pty).

    Old output beyond the kept window is dropped: ``offset`` may then be larger than asked."""

    data: bytes
    offset: int
    next_offset: int
    running: bool
    exit_code: int | None = None


class SandboxInfo(_Frozen):
    sandbox_id: str
    backend: str
    created_at: float
    limits: SandboxLimits
    workspace_dir: Path | None
    network: bool
    limit_enforcement: LimitEnforcement
    labels: dict[str, str] = Field(default_factory=dict)


class SandboxHealth(_Frozen):
    alive: bool
    running_processes: int = 0
    memory_bytes: int | None = None
    limit_enforcement: LimitEnforcement = "none"
