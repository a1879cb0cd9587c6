"""The contract between the gateway and workspace sessions: value types, errors, ports.

Writes (anything that changes files) go to the workspace's single owner, the WorkspaceSession,
through a ``WorkspaceWriter``: in-process (``LocalWorkspaceWriter``, tests and bare uvicorn) or
through Ray (``RayWorkspaceWriter``, the hosted sessions). Reads of durable state (file index,
file bytes, versions, diffs, archives) need no owner and go straight to the database and blob
store through ``WorkspaceReader``. Everything here pickles: it crosses actor boundaries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from sandbox import (
    ExecRequest,
    ExecResult,
    OutputChunk,
    ProcessInfo,
    ProcessLogs,
    StartRequest,
)

__all__ = [
    "Author",
    "AuthorKind",
    "Change",
    "ChangeKind",
    "ExecOutcome",
    "FileInfo",
    "FileNotFoundInWorkspace",
    "InvalidArchive",
    "InvalidPath",
    "LeaseLost",
    "PreconditionFailed",
    "QuotaExceeded",
    "SessionInfo",
    "SyncReport",
    "VersionInfo",
    "VersionNotFound",
    "WorkspaceError",
    "WorkspaceNotFound",
    "WorkspaceUnavailable",
    "WorkspaceWriter",
    "WriteResult",
]

ChangeKind = Literal["added", "modified", "deleted"]
AuthorKind = Literal["user", "agent", "system"]


@dataclass(frozen=True, slots=True)
class Author:
    """Who made a change: a user, an agent run (acting for a user) or the system."""

    user_id: str | None
    kind: AuthorKind = "user"
    run_id: str | None = None
    # Carried into the host's log lines: context variables do not cross processes.
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    size: int
    sha256: str
    modified_at: datetime
    mode: int = 0o644


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    kind: ChangeKind
    before_sha256: str | None
    after_sha256: str | None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class VersionInfo:
    workspace_id: str
    number: int
    created_at: datetime
    author_id: str | None
    author_kind: str
    message: str
    restored_from: int | None = None
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True, slots=True)
class WriteResult:
    path: str
    size: int
    sha256: str
    version: int
    # False when the bytes equal what is stored: no new version was made (PUT is idempotent).
    changed: bool = True


@dataclass(frozen=True, slots=True)
class SessionInfo:
    workspace_id: str
    host: str
    node_id: str | None
    opened_at: datetime
    last_used_at: datetime
    writes: int
    lease_epoch: int
    head_version: int
    pending_writes: int = 0
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What syncing the working tree after sandbox work did.

    ``version`` is the new version's number, or None when nothing changed or the version was
    refused (``refused`` says why, e.g. over quota: the files stay in the tree unversioned, so
    a later sync that finds them within quota versions them). ``skipped`` lists what was not
    versioned: (path, reason) for symlinks, special files, hard links and invalid names.
    """

    version: int | None = None
    files_changed: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    refused: str | None = None


@dataclass(frozen=True, slots=True)
class ExecOutcome:
    """A command's result and the version its file changes became."""

    result: ExecResult
    sync: SyncReport


class WorkspaceError(Exception):
    """Root of workspace errors. Domain data only; the gateway maps them to HTTP."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class WorkspaceNotFound(WorkspaceError):
    """The workspace does not exist, is deleted, or the caller may not know it exists."""


class FileNotFoundInWorkspace(WorkspaceError):
    pass


class VersionNotFound(WorkspaceError):
    pass


class InvalidPath(WorkspaceError):
    """A path that is absolute, climbs out, has NUL/control characters, is too long, etc."""


class PreconditionFailed(WorkspaceError):
    """``If-Match`` did not match the current content (optimistic concurrency)."""

    def __init__(self, detail: str, current_sha256: str | None = None) -> None:
        super().__init__(detail)
        self.current_sha256 = current_sha256

    def __reduce__(self) -> tuple[type[PreconditionFailed], tuple[str, str | None]]:
        return (type(self), (self.detail, self.current_sha256))


class QuotaExceeded(WorkspaceError):
    """A file or the whole workspace would exceed its size quota.

    ``limit_bytes`` is the byte limit that applies (per file or per workspace); when the file
    count was exceeded, ``limit_files`` is that limit and ``limit_bytes`` the workspace limit.
    """

    def __init__(self, detail: str, limit_bytes: int, limit_files: int | None = None) -> None:
        super().__init__(detail)
        self.limit_bytes = limit_bytes
        self.limit_files = limit_files

    def __reduce__(self) -> tuple[type[QuotaExceeded], tuple[str, int, int | None]]:
        return (type(self), (self.detail, self.limit_bytes, self.limit_files))


class InvalidArchive(WorkspaceError):
    pass


class LeaseLost(WorkspaceError):
    """Another session took ownership of the workspace; this one must not write (fencing)."""


class WorkspaceUnavailable(WorkspaceError):
    """The workspace's host could not be reached or did not answer in time; retry shortly."""


class WorkspaceWriter(Protocol):
    """Every change to a workspace's files goes through this port, in order, per workspace.

    Each call returns only once the change is durable (blob store + database) and is one version.
    """

    async def write_file(
        self, workspace_id: str, path: str, data: bytes, *, if_match: str | None, author: Author
    ) -> WriteResult: ...

    async def delete_file(
        self, workspace_id: str, path: str, *, if_match: str | None, author: Author
    ) -> VersionInfo: ...

    async def move_file(
        self, workspace_id: str, source: str, destination: str, *, author: Author
    ) -> VersionInfo: ...

    async def apply_batch(
        self,
        workspace_id: str,
        files: dict[str, bytes | None],
        *,
        author: Author,
        message: str,
        replace_all: bool = False,
        modes: dict[str, int] | None = None,
    ) -> VersionInfo:
        """Write (bytes) and delete (None) several files as one version.

        ``replace_all`` makes the batch the complete file set (files not named are deleted).
        ``modes`` gives written files their mode (executable or not, as git keeps it); a file
        not named there keeps its mode (0o644 if new).
        """
        ...

    async def restore(self, workspace_id: str, version: int, *, author: Author) -> VersionInfo:
        """Make ``version``'s files current again, as a new version (so it can be undone)."""
        ...

    async def close(self, workspace_id: str) -> None:
        """Unload the workspace's session, if one is open (e.g. after deletion)."""
        ...

    async def sessions(self) -> list[SessionInfo]: ...

    # --- sandbox execution: commands run with the workspace's tree at /workspace ----------------

    async def exec(self, workspace_id: str, request: ExecRequest, *, author: Author) -> ExecOutcome:
        """Run one command; files it changed become one version. Not idempotent."""
        ...

    def exec_stream(
        self, workspace_id: str, request: ExecRequest, *, author: Author
    ) -> AsyncIterator[OutputChunk | ExecOutcome]:
        """Like ``exec``: output chunks as they come, then one ``ExecOutcome``."""
        ...

    async def start_process(
        self,
        workspace_id: str,
        request: StartRequest,
        *,
        author: Author,
        client_token: str | None = None,
    ) -> ProcessInfo:
        """Start a long-running process; the same ``client_token`` returns the same process."""
        ...

    async def list_processes(self, workspace_id: str) -> list[ProcessInfo]: ...

    async def read_logs(
        self, workspace_id: str, process_id: str, offset: int = 0
    ) -> ProcessLogs: ...

    def follow_process(
        self, workspace_id: str, process_id: str, offset: int = 0
    ) -> AsyncIterator[bytes]: ...

    async def write_stdin(self, workspace_id: str, process_id: str, data: bytes) -> None: ...

    async def resize_terminal(
        self, workspace_id: str, process_id: str, *, cols: int, rows: int
    ) -> None: ...

    async def kill_process(
        self, workspace_id: str, process_id: str, *, author: Author
    ) -> SyncReport:
        """Kill a process (and what it spawned), then sync the files it changed."""
        ...

    async def sync(self, workspace_id: str, *, author: Author) -> SyncReport:
        """Version what processes changed in the working tree so far."""
        ...
