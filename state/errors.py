"""Errors of the durable-state library: one root, specific leaves.

Every exception passes all of its constructor arguments to ``super().__init__`` so that it
pickles (Ray re-raises the original type across actor calls only if it can).
"""

from __future__ import annotations

__all__ = [
    "BlobIntegrityError",
    "BlobNotFound",
    "InvalidDigest",
    "MigrationError",
    "StateError",
    "StorageUnavailable",
]


class StateError(Exception):
    """Root of every error raised by ``state``."""


class BlobNotFound(StateError):
    """No blob is stored under ``digest``."""

    def __init__(self, digest: str) -> None:
        super().__init__(digest)
        self.digest = digest

    def __str__(self) -> str:
        return f"blob {self.digest} not found"


class BlobIntegrityError(StateError):
    """The stored bytes of ``digest`` hash to ``actual_digest``: the copy is corrupt."""

    def __init__(self, digest: str, actual_digest: str) -> None:
        super().__init__(digest, actual_digest)
        self.digest = digest
        self.actual_digest = actual_digest

    def __str__(self) -> str:
        return f"blob {self.digest} is corrupt: its content hashes to {self.actual_digest}"


class InvalidDigest(StateError, ValueError):
    """A digest that is not 64 lowercase hex characters (a SHA-256 hex digest)."""

    def __init__(self, digest: str) -> None:
        super().__init__(digest)
        self.digest = digest

    def __str__(self) -> str:
        return f"invalid sha256 digest: {self.digest!r:.80}"


class StorageUnavailable(StateError):
    """A storage ``part`` ("database", "blobs", "redis", ...) cannot be reached or refused us."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(part, reason)
        self.part = part
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.part} unavailable: {self.reason}"


class MigrationError(StateError):
    """Applying or inspecting schema migrations failed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
