"""A text document: a pycrdt ``Doc`` whose shared text is ``getText("content")``.

Updates are Yjs v1 updates, so stock Yjs clients and this class converge on the same bytes.
pycrdt indexes text in UTF-8 bytes; this class speaks Python ``str`` indices and converts.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import contextmanager

from pycrdt import Doc, Text, TransactionEvent, get_update

from collab.errors import MalformedMessage

__all__ = ["CONTENT", "TextDocument", "text_edits"]

CONTENT = "content"
# A Yjs v1 update with no items and no deletions.
_EMPTY_UPDATE = b"\x00\x00"
# Above this many differing characters the edit is one replacement (difflib is quadratic).
_FINE_DIFF_CHARS = 4000


def text_edits(old: str, new: str) -> list[tuple[int, int, str]]:
    """Edits ``(start, end, replacement)`` turning ``old`` into ``new``, in ``old`` indices,
    sorted from last to first so that applying them in order never shifts a later one.

    The common prefix and suffix are kept; the middle is diffed by characters when small, so an
    edit elsewhere in the document does not disturb a concurrent editor's text.
    """
    if old == new:
        return []
    prefix = 0
    limit = min(len(old), len(new))
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    old_mid, new_mid = old[prefix : len(old) - suffix], new[prefix : len(new) - suffix]
    if len(old_mid) + len(new_mid) > _FINE_DIFF_CHARS:
        return [(prefix, prefix + len(old_mid), new_mid)]
    matcher = difflib.SequenceMatcher(None, old_mid, new_mid, autojunk=False)
    edits = [
        (prefix + i1, prefix + i2, new_mid[j1:j2])
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]
    return list(reversed(edits))


class TextDocument:
    """One file's live document. Not thread-safe; the owner serializes access."""

    def __init__(self, *, client_id: int | None = None) -> None:
        self._doc: Doc[Text] = Doc(client_id=client_id)
        self._text: Text = self._doc.get(CONTENT, type=Text)
        self._captured: list[bytes] | None = None
        self._subscription = self._doc.observe(self._on_transaction)

    def _on_transaction(self, event: TransactionEvent) -> None:
        if self._captured is not None:
            self._captured.append(event.update)

    @contextmanager
    def _capture(self) -> Iterator[list[bytes]]:
        captured: list[bytes] = []
        self._captured = captured
        try:
            yield captured
        finally:
            self._captured = None

    @property
    def text(self) -> str:
        return str(self._text)

    def state_vector(self) -> bytes:
        return self._doc.get_state()

    def encode_state(self, state_vector: bytes | None = None) -> bytes:
        """The update holding everything not covered by ``state_vector`` (all when None)."""
        if state_vector is None:
            return self._doc.get_update()
        try:
            return self._doc.get_update(state_vector)
        except ValueError as exc:
            raise MalformedMessage(f"invalid state vector: {exc}") from None

    def apply_update(self, update: bytes) -> bytes | None:
        """Apply a Yjs update; return the update of what actually changed, None if nothing did.

        The returned bytes are what must be persisted and fanned out: an update the document
        already held yields None, so replays (reconnects, retries) cost nothing downstream.
        """
        with self._capture() as captured:
            try:
                self._doc.apply_update(update)
            except (ValueError, RuntimeError) as exc:
                raise MalformedMessage(f"invalid Yjs update: {exc}") from None
        return _merge(captured)

    def lacks_dependencies(self, update: bytes) -> bool:
        """True if ``update`` holds items this document could not integrate (yet).

        Yjs integrates a client's items in clock order: an update whose earlier items never
        arrived stays pending inside the document, invisible to ``encode_state``, until they do.
        Call after ``apply_update``. Deletions are not checked (they cannot be told apart cheaply).
        """
        if update == _EMPTY_UPDATE:
            return False
        try:
            missing = get_update(update, self._doc.get_state())
        except ValueError as exc:
            raise MalformedMessage(f"invalid Yjs update: {exc}") from None
        # A v1 update starts with the number of clients it has items of.
        return bool(missing) and missing[0] != 0

    def set_text(self, new: str) -> bytes | None:
        """Edit the text into ``new`` with a minimal diff; return the update (None if equal)."""
        old = self.text
        edits = text_edits(old, new)
        if not edits:
            return None
        with self._capture() as captured, self._doc.transaction():
            for start, end, replacement in edits:
                byte_start = len(old[:start].encode())
                byte_end = byte_start + len(old[start:end].encode())
                if byte_end > byte_start:
                    del self._text[byte_start:byte_end]
                if replacement:
                    self._text.insert(byte_start, replacement)
        return _merge(captured)

    def insert(self, index: int, value: str) -> bytes | None:
        """Insert at a ``str`` index (clamped); return the update."""
        current = self.text
        index = max(0, min(index, len(current)))
        with self._capture() as captured:
            self._text.insert(len(current[:index].encode()), value)
        return _merge(captured)

    def delete(self, start: int, length: int) -> bytes | None:
        """Delete ``length`` characters from a ``str`` index (clamped); return the update."""
        current = self.text
        start = max(0, min(start, len(current)))
        end = max(start, min(start + length, len(current)))
        if end == start:
            return None
        with self._capture() as captured:
            byte_start = len(current[:start].encode())
            del self._text[byte_start : byte_start + len(current[start:end].encode())]
        return _merge(captured)


def _merge(updates: list[bytes]) -> bytes | None:
    real = [u for u in updates if u != _EMPTY_UPDATE]
    if not real:
        return None
    if len(real) == 1:
        return real[0]
    from pycrdt import merge_updates

    merged: bytes = merge_updates(*real)
    return merged
