"""Schema migrations (Alembic), driven programmatically: there is no ``alembic.ini``.

The functions here are synchronous so that a CLI can call them. They run the async engine on a
private thread with its own event loop, so they also work when the caller already runs an event
loop (the caller is then blocked; async code should wrap them in ``anyio.to_thread.run_sync``).
Any URL spelling is accepted (``sqlite:///``, ``sqlite+aiosqlite:///``, ``postgresql://``,
``postgresql+asyncpg://``); it is rewritten to the async driver.

A new revision is generated against a database migrated to head with
``alembic.command.revision(make_config("sqlite:///dev.db"), "message", autogenerate=True)``;
review it by hand (types must not import ``state.models``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import event, pool
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from state.db import normalize_database_url, sqlite_path
from state.errors import MigrationError, StorageUnavailable
from state.models import Base

__all__ = [
    "current_revision",
    "head_revision",
    "make_config",
    "schema_differences",
    "upgrade",
]

_SCRIPT_LOCATION = Path(__file__).resolve().parent

_T = TypeVar("_T")


def make_config(url: str | URL | None = None) -> Config:
    """An Alembic ``Config`` for this package's migrations, optionally bound to ``url``."""
    config = Config()
    config.set_main_option("script_location", str(_SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    if url is not None:
        rendered = normalize_database_url(url).render_as_string(hide_password=False)
        # ConfigParser interpolates "%": escape it (URL-encoded passwords contain it).
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision shipped in this package."""
    try:
        head = ScriptDirectory.from_config(make_config()).get_current_head()
    except CommandError as exc:
        raise MigrationError(f"cannot resolve the head revision: {exc}") from exc
    if head is None:
        raise MigrationError("no migration revisions are packaged")
    return head


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (default: the newest)."""

    def run(connection: Connection) -> None:
        config = make_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    _run(url, run)


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at; ``None`` if it was never migrated."""

    def run(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    return _run(url, run)


def schema_differences(url: str) -> list[Any]:
    """Differences between the migrated schema at ``url`` and ``state.models``.

    Empty when the migrations create exactly what the models declare. Each item is an
    Alembic autogenerate diff tuple such as ``("add_column", ...)``.
    """

    def run(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))

    return _run(url, run)


def migration_engine(url: str | URL) -> AsyncEngine:
    """An unpooled engine for running migrations against ``url``.

    SQLite foreign keys stay off here on purpose: batch migrations recreate tables, and with
    foreign keys on, dropping the old table would cascade-delete rows of referencing tables.
    """
    async_url = normalize_database_url(url)
    sqlite_file = sqlite_path(async_url)
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(async_url, poolclass=pool.NullPool)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_migration_pragmas)
    return engine


def _sqlite_migration_pragmas(dbapi_connection: Any, _connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def _run(url: str, work: Callable[[Connection], _T]) -> _T:
    """Run ``work`` in one committed transaction, on a private thread and event loop."""

    async def main() -> _T:
        engine = migration_engine(url)
        try:
            async with engine.begin() as connection:
                return await connection.run_sync(work)
        finally:
            await engine.dispose()

    try:
        return _run_on_private_loop(main)
    except CommandError as exc:
        raise MigrationError(str(exc)) from exc
    except (OperationalError, InterfaceError, OSError, TimeoutError) as exc:
        raise StorageUnavailable("database", f"{type(exc).__name__}: {exc}") from exc
    except (DBAPIError, SQLAlchemyError) as exc:
        raise MigrationError(f"{type(exc).__name__}: {exc}") from exc


def _run_on_private_loop(main: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    # A private thread keeps asyncio.run away from any loop (or loop policy state) the caller has.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-migrations") as executor:
        return executor.submit(lambda: asyncio.run(main())).result()
