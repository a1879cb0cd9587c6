"""The sandbox library's exceptions: one root, specific leaves, all picklable.

A failing user command is never an exception: it is an ``ExecResult`` with its exit code.
These errors mean the sandbox itself could not do what was asked.
"""

from __future__ import annotations

__all__ = [
    "ProcessNotFound",
    "SandboxCrashed",
    "SandboxCreateFailed",
    "SandboxError",
    "SandboxLimitInvalid",
    "SandboxNotFound",
    "SandboxProtocolError",
    "SandboxUnavailable",
]


class SandboxError(Exception):
    """Root of every error the sandbox library raises."""


class SandboxNotFound(SandboxError):
    """No live sandbox has this id (never created, destroyed, or crashed and reaped)."""

    def __init__(self, sandbox_id: str) -> None:
        super().__init__(sandbox_id)
        self.sandbox_id = sandbox_id

    def __str__(self) -> str:
        return f"sandbox {self.sandbox_id!r} not found"


class ProcessNotFound(SandboxError):
    """The sandbox has no process with this id."""

    def __init__(self, sandbox_id: str, process_id: str) -> None:
        super().__init__(sandbox_id, process_id)
        self.sandbox_id = sandbox_id
        self.process_id = process_id

    def __str__(self) -> str:
        return f"process {self.process_id!r} not found in sandbox {self.sandbox_id!r}"


class SandboxCreateFailed(SandboxError):
    """The backend could not start a sandbox; ``reason`` says why (no user data in it)."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(backend, reason)
        self.backend = backend
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.backend}: could not create a sandbox: {self.reason}"


class SandboxCrashed(SandboxError):
    """The sandbox died or stopped answering; it is gone and must be replaced."""

    def __init__(self, sandbox_id: str, reason: str) -> None:
        super().__init__(sandbox_id, reason)
        self.sandbox_id = sandbox_id
        self.reason = reason

    def __str__(self) -> str:
        return f"sandbox {self.sandbox_id!r} crashed: {self.reason}"


class SandboxProtocolError(SandboxCrashed):
    """The in-sandbox supervisor sent something malformed (treated as a crash)."""


class SandboxLimitInvalid(SandboxError):
    """A requested limit is outside what this backend or its settings allow."""

    def __init__(self, limit: str, value: object, allowed: str) -> None:
        super().__init__(limit, value, allowed)
        self.limit = limit
        self.value = value
        self.allowed = allowed

    def __str__(self) -> str:
        return f"limit {self.limit}={self.value!r} is invalid: {self.allowed}"


class SandboxUnavailable(SandboxError):
    """The backend cannot run on this host (missing binary, not root, no kernel support)."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(backend, reason)
        self.backend = backend
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.backend} backend unavailable: {self.reason}"
