"""Unified text diffs of file versions, size-capped; binary files are reported, not diffed."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from actors.workspace.api import Change

__all__ = ["DEFAULT_MAX_DIFF_BYTES", "FileDiff", "is_binary", "unified_diff"]

# Files larger than this (either side) are not diffed line by line.
DEFAULT_MAX_DIFF_BYTES = 256 * 1024
# The rendered diff is cut after this many characters.
_MAX_DIFF_CHARS = 512 * 1024


@dataclass(frozen=True, slots=True)
class FileDiff:
    """One changed file: the change, and its unified diff when both sides are small text.

    ``diff`` is None for binary files (``binary``) and files over the size cap (``truncated``).
    """

    change: Change
    diff: str | None
    binary: bool = False
    truncated: bool = False


def is_binary(data: bytes) -> bool:
    """True for content that is not UTF-8 text (or contains NUL, as binary formats do)."""
    if b"\x00" in data[:8192]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def unified_diff(
    change: Change,
    before: bytes | None,
    after: bytes | None,
    *,
    max_bytes: int = DEFAULT_MAX_DIFF_BYTES,
    context_lines: int = 3,
) -> FileDiff:
    """Diff ``before`` -> ``after`` (None: the file does not exist on that side)."""
    sides = [side for side in (before, after) if side is not None]
    if any(len(side) > max_bytes for side in sides):
        return FileDiff(change, None, truncated=True)
    if any(is_binary(side) for side in sides):
        return FileDiff(change, None, binary=True)
    old = (before or b"").decode("utf-8").splitlines(keepends=True)
    new = (after or b"").decode("utf-8").splitlines(keepends=True)
    lines = difflib.unified_diff(
        old,
        new,
        fromfile="/dev/null" if before is None else f"a/{change.path}",
        tofile="/dev/null" if after is None else f"b/{change.path}",
        n=context_lines,
    )
    rendered = "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
    if len(rendered) > _MAX_DIFF_CHARS:
        return FileDiff(change, rendered[:_MAX_DIFF_CHARS], truncated=True)
    return FileDiff(change, rendered)
