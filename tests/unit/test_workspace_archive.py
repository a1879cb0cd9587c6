"""Reading uploaded zips safely, and writing a workspace as a zip."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from actors.workspace.api import InvalidArchive, QuotaExceeded
from actors.workspace.archive import read_zip, unpack_zip, write_zip

LIMITS = {"max_files": 10, "max_total_bytes": 1_000_000, "max_file_bytes": 100_000}


def _zip(*members: tuple[zipfile.ZipInfo | str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def test_round_trip_with_binary_and_directories_skipped() -> None:
    files = {"README.md": b"# hi\n", "src/app.py": b"print(1)\n", "img.bin": bytes(range(256))}
    data = write_zip((path, content, 0o644) for path, content in files.items())
    assert read_zip(data, **LIMITS) == files
    with_dirs = _zip(("src/", b""), ("src/app.py", b"x"))
    assert read_zip(with_dirs, **LIMITS) == {"src/app.py": b"x"}


def test_write_zip_is_reproducible_and_keeps_modes() -> None:
    entries = [("run.sh", b"#!/bin/sh\n", 0o755), ("a.txt", b"a", 0o644)]
    first, second = write_zip(entries), write_zip(entries)
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert (archive.getinfo("run.sh").external_attr >> 16) & 0o777 == 0o755
    assert unpack_zip(first, **LIMITS).modes == {"run.sh": 0o755, "a.txt": 0o644}


def test_an_upload_keeps_only_whether_a_member_is_executable() -> None:
    def member(name: str, *, unix_mode: int | None) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name)
        info.create_system = 0 if unix_mode is None else 3
        info.external_attr = 0 if unix_mode is None else (stat.S_IFREG | unix_mode) << 16
        return info

    data = _zip(
        (member("build.sh", unix_mode=0o700), b"#!/bin/sh\n"),
        (member("suid", unix_mode=0o4777), b"x"),
        (member("notes.txt", unix_mode=0o664), b"n"),
        (member("from-windows.txt", unix_mode=None), b"w"),
    )
    unpacked = unpack_zip(data, **LIMITS)
    assert set(unpacked.files) == {"build.sh", "suid", "notes.txt", "from-windows.txt"}
    # No setuid or group-write bits get in; a member without a Unix mode names none.
    assert unpacked.modes == {"build.sh": 0o755, "suid": 0o755, "notes.txt": 0o644}


@pytest.mark.parametrize(
    "name", ["../evil.txt", "/etc/passwd", "a/../../b", "a\\b.txt", "a//b", "nul\x00.txt", "./x"]
)
def test_hostile_member_paths_refuse_the_whole_archive(name: str) -> None:
    info = zipfile.ZipInfo("placeholder")
    info.filename = name  # ZipInfo normalizes some separators; force the raw name in.
    data = _zip(("ok.txt", b"fine"), (info, b"bad"))
    with pytest.raises(InvalidArchive):
        read_zip(data, **LIMITS)


def test_symlink_members_are_refused() -> None:
    info = zipfile.ZipInfo("link")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with pytest.raises(InvalidArchive, match="symlink"):
        read_zip(_zip((info, b"/etc/passwd")), **LIMITS)


def test_duplicate_paths_are_refused() -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = _zip(("a.txt", b"1"), ("a.txt", b"2"))
    with pytest.raises(InvalidArchive, match="twice"):
        read_zip(data, **LIMITS)


def test_encrypted_members_are_refused() -> None:
    data = bytearray(_zip(("a.txt", b"secret")))
    # Set the "encrypted" flag bit in the local header and the central directory entry.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature) + offset
        data[at] |= 0x1
    with pytest.raises(InvalidArchive, match="encrypted"):
        read_zip(bytes(data), **LIMITS)


def test_garbage_is_an_invalid_archive() -> None:
    with pytest.raises(InvalidArchive):
        read_zip(b"this is not a zip", **LIMITS)
    truncated = _zip(("a.txt", b"x" * 1000))[:-30]
    with pytest.raises(InvalidArchive):
        read_zip(truncated, **LIMITS)


def test_quotas_on_declared_sizes() -> None:
    with pytest.raises(QuotaExceeded) as caught:
        read_zip(_zip(*[(f"f{i}.txt", b"x") for i in range(11)]), **LIMITS)
    assert caught.value.limit_files == 10
    with pytest.raises(QuotaExceeded) as caught:
        read_zip(_zip(("big.bin", b"\x00" * 100_001)), **LIMITS)
    assert caught.value.limit_bytes == 100_000
    with pytest.raises(QuotaExceeded):
        read_zip(
            _zip(*[(f"f{i}.bin", b"\x00" * 90_000) for i in range(10)]),
            **{**LIMITS, "max_total_bytes": 800_000},
        )


def test_a_zip_bomb_lying_about_its_size_is_stopped_while_inflating() -> None:
    """A member declaring 1 KiB but inflating to 50 MB never gets past its declared size."""
    bomb = bytearray(_zip(("bomb.bin", b"\x00" * 50_000_000)))
    assert len(bomb) < 100_000
    real_size = (50_000_000).to_bytes(4, "little")
    fake_size = (1024).to_bytes(4, "little")
    # Uncompressed size fields: local header offset 22, central directory offset 24.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = bomb.index(signature) + offset
        assert bomb[at : at + 4] == real_size
        bomb[at : at + 4] = fake_size
    with pytest.raises((InvalidArchive, QuotaExceeded)):
        read_zip(bytes(bomb), **LIMITS)
