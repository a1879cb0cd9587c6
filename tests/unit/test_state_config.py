"""Opening state components from settings, without any server."""

from __future__ import annotations

from pathlib import Path

import pytest

from state import (
    Database,
    MemoryBlobStore,
    MemoryKeyValueStore,
    migrations,
    normalize_database_url,
    open_blob_store,
    open_kv,
)
from state.blobs.local import LocalBlobStore
from state.kv.redis import RedisKeyValueStore
from state.migrations import head_revision
from state.settings import DatabaseSettings, LocalBlobSettings, RedisSettings


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5/db", "postgresql+asyncpg://u:p@h:5/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:////data/v.db", "sqlite+aiosqlite:////data/v.db"),
        ("sqlite+aiosqlite:///rel.db", "sqlite+aiosqlite:///rel.db"),
    ],
)
def test_database_urls_are_rewritten_to_async_drivers(given: str, expected: str) -> None:
    assert normalize_database_url(given).render_as_string(hide_password=False) == expected


def test_database_from_settings_needs_a_resolved_url() -> None:
    with pytest.raises(ValueError, match="url"):
        Database.from_settings(DatabaseSettings(url=None))


async def test_sqlite_database_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "v.db"
    database = Database.from_settings(DatabaseSettings(url=f"sqlite:///{path}"))
    try:
        await database.ping()
        assert database.dialect == "sqlite"
        assert path.exists()
    finally:
        await database.close()


def test_open_blob_store_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_blob_store(LocalBlobSettings(root=tmp_path)), LocalBlobStore)
    assert isinstance(MemoryBlobStore(), MemoryBlobStore)


def test_open_kv_without_url_is_in_process() -> None:
    assert isinstance(open_kv(RedisSettings()), MemoryKeyValueStore)
    assert isinstance(open_kv(RedisSettings(url="redis://127.0.0.1:1/0")), RedisKeyValueStore)


def test_there_is_exactly_one_head_revision() -> None:
    # The newest revision file is the one head (several heads would raise here).
    versions = Path(migrations.__file__).parent / "versions"
    assert head_revision() == max(path.name[:4] for path in versions.glob("[0-9]*.py"))
