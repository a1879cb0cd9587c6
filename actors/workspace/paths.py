"""Workspace paths: the one gate every path from a client, an archive or a tree passes.

A valid path is relative, POSIX (``/`` separated), names a file (no trailing slash), and every
component is a plain name: no ``.``/``..``, no empty components, no backslashes, no control
characters (C0, DEL, C1), valid UTF-8 (no lone surrogates), at most 255 UTF-8 bytes per
component and 1024 bytes in total. Nothing is rewritten: a path that is not already canonical is
refused, so the path a client sends is exactly the path that is stored.
"""

from __future__ import annotations

from actors.workspace.api import InvalidPath

__all__ = ["MAX_COMPONENT_BYTES", "MAX_PATH_BYTES", "is_control_char", "validate_path"]

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 1024


def is_control_char(char: str) -> bool:
    """True for C0 controls (incl. NUL), DEL and the C1 controls U+0080..U+009F."""
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


def validate_path(raw: str) -> str:
    """Return ``raw`` if it is a valid workspace file path; raise ``InvalidPath`` otherwise."""
    if not isinstance(raw, str):
        raise InvalidPath(f"path must be a string, not {type(raw).__name__}")
    if not raw:
        raise InvalidPath("path is empty")
    try:
        encoded = raw.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPath("path is not valid UTF-8") from None
    shown = repr(raw[:80])
    if len(encoded) > MAX_PATH_BYTES:
        raise InvalidPath(f"path is longer than {MAX_PATH_BYTES} bytes: {shown}")
    if raw.startswith("/"):
        raise InvalidPath(f"path is absolute: {shown}")
    if "\\" in raw:
        raise InvalidPath(f"path contains a backslash: {shown}")
    if any(is_control_char(char) for char in raw):
        raise InvalidPath(f"path contains a control character: {shown}")
    for component in raw.split("/"):
        if not component:
            raise InvalidPath(f"path has an empty component or a trailing slash: {shown}")
        if component in (".", ".."):
            raise InvalidPath(f"path contains {component!r}: {shown}")
        if len(component.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise InvalidPath(f"a path component is longer than {MAX_COMPONENT_BYTES} bytes")
    return raw
