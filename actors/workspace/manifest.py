"""A version's complete file set: path -> (sha256, size, mode), stored as one canonical blob.

The encoding is canonical JSON (keys sorted, no spaces, UTF-8): ``{"a.py": ["<sha>", 12, 420]}``.
Equal file sets therefore encode to equal bytes and share one content-addressed blob.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from actors.workspace.api import Change

__all__ = ["DEFAULT_MODE", "EXECUTABLE_MODE", "Entry", "Manifest", "diff_manifests", "file_mode"]

DEFAULT_MODE = 0o644
EXECUTABLE_MODE = 0o755


def file_mode(permissions: int) -> int:
    """The mode a version records for a file with ``permissions``: like git, only whether it is
    executable (any x bit) is kept, so setuid bits or a sandbox's umask never get versioned."""
    return EXECUTABLE_MODE if permissions & 0o111 else DEFAULT_MODE


@dataclass(frozen=True, slots=True)
class Entry:
    sha256: str
    size: int
    mode: int = DEFAULT_MODE


class Manifest(Mapping[str, Entry]):
    """An immutable mapping of path -> Entry that also knows which paths are directories.

    ``apply`` derives a new manifest incrementally (directory counts and the byte total are
    updated, not recomputed), so a one-file change to a large workspace stays cheap.
    """

    __slots__ = ("_dir_counts", "_entries", "total_bytes")

    def __init__(self, entries: Mapping[str, Entry] | None = None) -> None:
        self._entries: dict[str, Entry] = dict(entries or {})
        self.total_bytes = sum(entry.size for entry in self._entries.values())
        self._dir_counts: dict[str, int] = {}
        for path in self._entries:
            _count_dirs(self._dir_counts, path, 1)

    def __getitem__(self, path: str) -> Entry:
        return self._entries[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Manifest({len(self)} files, {self.total_bytes} bytes)"

    def is_dir(self, path: str) -> bool:
        """True if some file lives under ``path/``."""
        return path in self._dir_counts

    def files_under(self, directory: str) -> list[str]:
        prefix = directory + "/"
        return sorted(path for path in self._entries if path.startswith(prefix))

    def apply(self, changes: Mapping[str, Entry | None]) -> Manifest:
        """A new manifest with ``changes`` applied (``None`` deletes the path)."""
        new = Manifest.__new__(Manifest)
        new._entries = dict(self._entries)
        new._dir_counts = dict(self._dir_counts)
        new.total_bytes = self.total_bytes
        for path, entry in changes.items():
            old = new._entries.pop(path, None)
            if old is not None:
                new.total_bytes -= old.size
                _count_dirs(new._dir_counts, path, -1)
            if entry is not None:
                new._entries[path] = entry
                new.total_bytes += entry.size
                _count_dirs(new._dir_counts, path, 1)
        return new

    def digests(self) -> set[str]:
        return {entry.sha256 for entry in self._entries.values()}

    def encode(self) -> bytes:
        body = {path: [e.sha256, e.size, e.mode] for path, e in self._entries.items()}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        body = json.loads(data.decode("utf-8"))
        return cls(
            {path: Entry(sha, int(size), int(mode)) for path, (sha, size, mode) in body.items()}
        )


def _count_dirs(counts: dict[str, int], path: str, delta: int) -> None:
    index = path.find("/")
    while index != -1:
        directory = path[:index]
        remaining = counts.get(directory, 0) + delta
        if remaining:
            counts[directory] = remaining
        else:
            counts.pop(directory, None)
        index = path.find("/", index + 1)


def diff_manifests(before: Mapping[str, Entry], after: Mapping[str, Entry]) -> list[Change]:
    """The changes that turn ``before`` into ``after``, sorted by path."""
    changes: list[Change] = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        if new is None:
            assert old is not None
            changes.append(Change(path, "deleted", old.sha256, None, None))
        elif old is None:
            changes.append(Change(path, "added", None, new.sha256, new.size))
        else:
            changes.append(Change(path, "modified", old.sha256, new.sha256, new.size))
    return changes
