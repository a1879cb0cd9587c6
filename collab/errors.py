"""Errors of the collaboration library: one root, specific leaves."""

from __future__ import annotations

__all__ = ["CollabError", "MalformedMessage", "SequenceTaken"]


class CollabError(Exception):
    """Root of collab errors."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedMessage(CollabError):
    """Bytes that are not a well-formed y-protocols message (truncated, overlong varint, ...)."""


class SequenceTaken(CollabError):
    """A document store already holds an update under that sequence number: another writer
    appended to the document (its owner moved), so the caller's view of it is stale."""
