"""Workspaces: the contract (``api``), hosted sessions and the read side, all plain Python.

The Ray shell (``actor.py``: the ``WorkspaceHost`` actor over ``WorkspaceHostCore``, and
``ray_writer.py``: ``RayWorkspaceWriter``) lives beside these modules and is deliberately not
imported here, so that importing the package never imports Ray.
"""

from __future__ import annotations

from actors.workspace.api import (
    Author,
    Change,
    FileInfo,
    FileNotFoundInWorkspace,
    InvalidArchive,
    InvalidPath,
    LeaseLost,
    PreconditionFailed,
    QuotaExceeded,
    SessionInfo,
    VersionInfo,
    VersionNotFound,
    WorkspaceError,
    WorkspaceNotFound,
    WorkspaceWriter,
    WriteResult,
)
from actors.workspace.archive import read_zip, write_zip
from actors.workspace.diff import FileDiff, unified_diff
from actors.workspace.host import HostStats, WorkspaceHostCore
from actors.workspace.local import LocalWorkspaceWriter
from actors.workspace.manifest import Entry, Manifest
from actors.workspace.paths import validate_path
from actors.workspace.purge import purge_deleted_workspaces
from actors.workspace.reader import WorkspaceReader
from actors.workspace.session import WorkspaceSession
from actors.workspace.settings import WorkspaceSettings
from actors.workspace.tree import TreeScan, WorkingTree

__all__ = [
    "Author",
    "Change",
    "Entry",
    "FileDiff",
    "FileInfo",
    "FileNotFoundInWorkspace",
    "HostStats",
    "InvalidArchive",
    "InvalidPath",
    "LeaseLost",
    "LocalWorkspaceWriter",
    "Manifest",
    "PreconditionFailed",
    "QuotaExceeded",
    "SessionInfo",
    "TreeScan",
    "VersionInfo",
    "VersionNotFound",
    "WorkingTree",
    "WorkspaceError",
    "WorkspaceHostCore",
    "WorkspaceNotFound",
    "WorkspaceReader",
    "WorkspaceSession",
    "WorkspaceSettings",
    "WorkspaceWriter",
    "WriteResult",
    "purge_deleted_workspaces",
    "read_zip",
    "unified_diff",
    "validate_path",
    "write_zip",
]
