"""Run untrusted code: the ``SandboxBackend`` port, its value types, errors and backends.

``open_backend(settings)`` returns the configured backend, to be used as ``async with``.
No Ray, no HTTP here: the SandboxPool actor and the API build on this library.
"""

from __future__ import annotations

from sandbox.errors import (
    ProcessNotFound,
    SandboxCrashed,
    SandboxCreateFailed,
    SandboxError,
    SandboxLimitInvalid,
    SandboxNotFound,
    SandboxProtocolError,
    SandboxUnavailable,
)
from sandbox.protocol import SandboxBackend
from sandbox.settings import (
    BackendSettings,
    BubblewrapSettings,
    DockerSettings,
    FakeSettings,
    SandboxSettings,
)
from sandbox.types import (
    WORKSPACE_MOUNT,
    ExecEvent,
    ExecRequest,
    ExecResult,
    KilledReason,
    LimitEnforcement,
    OutputChunk,
    ProcessInfo,
    ProcessLogs,
    SandboxHealth,
    SandboxInfo,
    SandboxLimits,
    SandboxSpec,
    StartRequest,
)

__all__ = [
    "WORKSPACE_MOUNT",
    "BackendSettings",
    "BubblewrapSettings",
    "DockerSettings",
    "ExecEvent",
    "ExecRequest",
    "ExecResult",
    "FakeSettings",
    "KilledReason",
    "LimitEnforcement",
    "OutputChunk",
    "ProcessInfo",
    "ProcessLogs",
    "ProcessNotFound",
    "SandboxBackend",
    "SandboxCrashed",
    "SandboxCreateFailed",
    "SandboxError",
    "SandboxHealth",
    "SandboxInfo",
    "SandboxLimitInvalid",
    "SandboxLimits",
    "SandboxNotFound",
    "SandboxProtocolError",
    "SandboxSettings",
    "SandboxSpec",
    "SandboxUnavailable",
    "StartRequest",
    "open_backend",
    "release_host_mounts",
]


def open_backend(settings: SandboxSettings) -> SandboxBackend:
    """The backend ``settings`` choose, not yet entered: use it as ``async with``."""
    match settings.backend:
        case BubblewrapSettings() as chosen:
            from sandbox.bubblewrap import BubblewrapBackend

            return BubblewrapBackend(chosen)
        case DockerSettings() as chosen:
            from sandbox.docker import DockerBackend

            return DockerBackend(chosen)
        case FakeSettings() as chosen:
            from sandbox.fake import FakeBackend

            return FakeBackend(chosen)


def release_host_mounts(settings: SandboxSettings) -> int:
    """Detach the bind mounts sandboxes left in the host's namespace under the backend's state
    directory (a killed pool cannot). Only for a node where no sandbox is running; returns how
    many mounts were detached."""
    match settings.backend:
        case BubblewrapSettings() | DockerSettings() as chosen:
            from sandbox.mounts import unmount_under

            if not chosen.state_dir.exists():
                return 0
            return unmount_under(chosen.state_dir)
        case FakeSettings():
            return 0
