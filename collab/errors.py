"""Errors of the collaboration library: one root, specific leaves."""

from __future__ import annotations

__all__ = ["CollabError", "MalformedMessage"]


class CollabError(Exception):
    """Root of collab errors."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedMessage(CollabError):
    """Bytes that are not a well-formed y-protocols message (truncated, overlong varint, ...)."""
