"""Zip archives: safe reading of uploads and writing of a workspace's files.

Reading trusts nothing in the archive: every member path passes ``validate_path``; symlinks,
special files, encrypted members and duplicate paths are refused; sizes are checked against the
declared sizes first and then against the bytes actually inflated (a zip bomb can lie about its
declared sizes), so no more than the limits is ever held in memory.

Modes travel as git keeps them, executable or not: a download stores each file's mode (so
``unzip`` restores ``+x``), an upload takes it from members that carry a Unix mode.
"""

from __future__ import annotations

import io
import stat
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from actors.workspace.api import InvalidArchive, QuotaExceeded, WorkspaceError
from actors.workspace.manifest import file_mode
from actors.workspace.paths import validate_path

__all__ = ["UnpackedZip", "read_zip", "unpack_zip", "write_zip"]

_CHUNK_BYTES = 64 * 1024
# Fixed timestamps make the archive of a version byte-for-byte reproducible.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(slots=True)
class UnpackedZip:
    """The files of an archive (path -> bytes) and the modes (``file_mode``) of those members
    that carry a Unix mode; archives made elsewhere (say, on Windows) carry none."""

    files: dict[str, bytes] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)


def read_zip(
    data: bytes, *, max_files: int, max_total_bytes: int, max_file_bytes: int
) -> dict[str, bytes]:
    """The files of ``unpack_zip``, path -> bytes."""
    unpacked = unpack_zip(
        data, max_files=max_files, max_total_bytes=max_total_bytes, max_file_bytes=max_file_bytes
    )
    return unpacked.files


def unpack_zip(
    data: bytes, *, max_files: int, max_total_bytes: int, max_file_bytes: int
) -> UnpackedZip:
    """Unpack ``data`` into its files and their modes; directories are skipped.

    Raises ``InvalidArchive`` for anything malformed or unsafe, ``QuotaExceeded`` when a member,
    the total or the number of files is over its limit.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise InvalidArchive(f"not a readable zip archive: {exc}") from exc
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        _check_declared(members, max_files, max_total_bytes, max_file_bytes)
        unpacked = UnpackedZip()
        total = 0
        for info in members:
            path = _member_path(info)
            if path in unpacked.files:
                raise InvalidArchive(f"the archive holds {path!r} twice")
            content = _inflate(archive, info, min(max_file_bytes, max_total_bytes - total))
            total += len(content)
            unpacked.files[path] = content
            permissions = stat.S_IMODE(info.external_attr >> 16)
            if info.create_system == 3 and permissions:
                unpacked.modes[path] = file_mode(permissions)
    return unpacked


def write_zip(files: Iterable[tuple[str, bytes, int]]) -> bytes:
    """A zip of (path, bytes, mode) entries, deflated, with fixed timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, content, mode in files:
            info = zipfile.ZipInfo(path, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so that external_attr carries the mode.
            info.external_attr = (stat.S_IFREG | file_mode(mode)) << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def _check_declared(
    members: list[zipfile.ZipInfo], max_files: int, max_total_bytes: int, max_file_bytes: int
) -> None:
    if len(members) > max_files:
        raise QuotaExceeded(
            f"the archive holds {len(members)} files; the limit is {max_files}",
            max_total_bytes,
            max_files,
        )
    declared = 0
    for info in members:
        if info.file_size > max_file_bytes:
            raise QuotaExceeded(
                f"{info.filename!r} is {info.file_size} bytes; files may be {max_file_bytes}",
                max_file_bytes,
            )
        declared += info.file_size
    if declared > max_total_bytes:
        raise QuotaExceeded(
            f"the archive inflates to {declared} bytes; the limit is {max_total_bytes}",
            max_total_bytes,
        )


def _member_path(info: zipfile.ZipInfo) -> str:
    if info.flag_bits & 0x1:
        raise InvalidArchive(f"{info.filename!r} is encrypted")
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if info.create_system == 3 and file_type not in (0, stat.S_IFREG):
        kind = "a symlink" if file_type == stat.S_IFLNK else "not a regular file"
        raise InvalidArchive(f"{info.filename!r} is {kind}")
    try:
        # orig_filename is the name as stored: zipfile cuts ``filename`` at the first NUL.
        return validate_path(info.orig_filename)
    except WorkspaceError as exc:
        raise InvalidArchive(f"bad member path {info.filename[:200]!r}: {exc.detail}") from exc


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """The member's bytes, refusing to inflate more than ``limit`` or its declared size."""
    cap = min(limit, info.file_size)
    chunks: list[bytes] = []
    size = 0
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK_BYTES):
                size += len(chunk)
                if size > cap:
                    raise QuotaExceeded(
                        f"{info.filename!r} inflates past its limit of {cap} bytes", limit
                    )
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, OSError) as exc:
        raise InvalidArchive(f"cannot read {info.filename!r}: {exc}") from exc
    except RuntimeError as exc:  # zipfile's "encrypted, password required" error.
        raise InvalidArchive(f"cannot read {info.filename!r}: {exc}") from exc
    if size != info.file_size:
        raise InvalidArchive(
            f"{info.filename!r} is {size} bytes, not the declared {info.file_size}"
        )
    return b"".join(chunks)
