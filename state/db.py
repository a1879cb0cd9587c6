"""The relational database: one async engine per process, sessions on demand.

SQLite (embedded mode) and PostgreSQL (cluster mode) are both supported through the same
``Database`` class; only the engine options differ.

SQLite allows one writer at a time, and a blocked writer waits in SQLite's busy handler, which
polls with growing sleeps (1, 2, 5, 10 ... 100 ms) and gives up with "database is locked" after
``busy_timeout``. Through aiosqlite a write transaction keeps the lock across event-loop turns
(one per statement), so under load the lock is almost always taken and a polling writer can
lose every poll for 5 s while others, handed the lock at once, keep it busy. So the write
transactions of one process queue FIFO on one asyncio lock (taken at a transaction's first
INSERT/UPDATE/DELETE, given back at its COMMIT or ROLLBACK); only writers in other processes
still meet SQLite's busy handler. Reads take no turn: in WAL they never wait for a writer.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_only

from state.errors import StorageUnavailable
from state.settings import DatabaseSettings

__all__ = ["Database", "normalize_database_url"]

# Driver-less or sync-driver URLs are rewritten to the async driver we ship.
_ASYNC_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
}

_SQLITE_PRAGMAS = (
    # WAL lets readers proceed during a write; FULL makes a committed transaction durable.
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)
_WRITE_STATEMENTS = ("INSERT", "UPDATE", "DELETE", "REPLACE")
# A writer queued this long is refused (StorageUnavailable) rather than left waiting: a
# transaction that writes while its own task holds another write transaction open waits here.
_WRITE_TURN_TIMEOUT_S = 60.0


def normalize_database_url(url: str | URL) -> URL:
    """Return ``url`` with an async driver (``postgresql+asyncpg``, ``sqlite+aiosqlite``).

    URLs that already name an async driver are returned unchanged.
    """
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver else parsed


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL; ``None`` for in-memory databases and other dialects."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _set_sqlite_pragmas(dbapi_connection: Any, _connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


class _WriteTurns:
    """One process's SQLite write transactions, one at a time, in arrival order."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        # Connections whose open transaction holds the turn (weak: a connection is never kept).
        self._holders: weakref.WeakSet[Connection] = weakref.WeakSet()

    async def acquire(self) -> None:
        try:
            async with asyncio.timeout(_WRITE_TURN_TIMEOUT_S):
                await self._lock.acquire()
        except TimeoutError as exc:
            raise StorageUnavailable(
                "database", f"no SQLite write turn within {_WRITE_TURN_TIMEOUT_S:g} s"
            ) from exc

    def release(self) -> None:
        self._lock.release()

    def before_cursor_execute(
        self, conn: Connection, _cursor: Any, statement: str, *_args: Any
    ) -> None:
        """Take the turn before a transaction's first write; runs in SQLAlchemy's greenlet."""
        if conn in self._holders or not statement.lstrip()[:7].upper().startswith(
            _WRITE_STATEMENTS
        ):
            return
        await_only(self.acquire())
        self._holders.add(conn)

    def end_transaction(self, conn: Connection) -> None:
        """COMMIT or ROLLBACK is about to run: the next writer may start."""
        if conn in self._holders:
            self._holders.discard(conn)
            self._lock.release()

    def listen(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self.before_cursor_execute)
        event.listen(engine, "commit", self.end_transaction)
        event.listen(engine, "rollback", self.end_transaction)


class Database:
    """An async SQLAlchemy engine plus a session factory.

    ``session()`` yields an ``AsyncSession`` whose objects stay usable after commit
    (``expire_on_commit=False``); callers open transactions with ``session.begin()``.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pool_timeout_s: float = 10.0,
        echo: bool = False,
    ) -> None:
        self.url = normalize_database_url(url)
        options: dict[str, Any] = {"echo": echo}
        if self.url.get_backend_name() == "sqlite":
            sqlite_file = sqlite_path(self.url)
            if sqlite_file is not None:
                sqlite_file.parent.mkdir(parents=True, exist_ok=True)
                options.update(pool_size=pool_size, pool_timeout=pool_timeout_s)
        else:
            options.update(
                pool_size=pool_size,
                pool_timeout=pool_timeout_s,
                pool_pre_ping=True,
                connect_args={"timeout": pool_timeout_s},
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        self._write_turns: _WriteTurns | None = None
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _set_sqlite_pragmas)
            self._write_turns = _WriteTurns()
            self._write_turns.listen(self.engine.sync_engine)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._echo = echo
        self._thread_engine: Engine | None = None

    @classmethod
    def from_settings(cls, settings: DatabaseSettings) -> Database:
        """Open the database named by ``settings``; the caller resolves ``url=None`` first."""
        if settings.url is None:
            raise ValueError(
                "DatabaseSettings.url is None: resolve it (e.g. to "
                "sqlite+aiosqlite:///<data_dir>/vibecode.db) before opening the database"
            )
        return cls(
            settings.url,
            pool_size=settings.pool_size,
            pool_timeout_s=settings.pool_timeout_s,
            echo=settings.echo,
        )

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """Yield a new session; it is closed (and any open transaction rolled back) on exit."""
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def write_turn(self) -> AsyncIterator[None]:
        """Hold this process's SQLite write turn (see the module docstring) for a write
        transaction run outside ``engine`` and ``session()``, e.g. on ``thread_engine()``.
        A no-op on PostgreSQL. Not reentrant: run no other write transaction inside."""
        if self._write_turns is None:
            yield
            return
        await self._write_turns.acquire()
        try:
            yield
        finally:
            self._write_turns.release()

    async def ping(self) -> None:
        """Run ``SELECT 1``; raise ``StorageUnavailable("database", ...)`` if that fails."""
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            raise StorageUnavailable("database", f"{type(exc).__name__}: {exc}") from exc

    def thread_engine(self) -> Engine | None:
        """A synchronous engine on this SQLite file, with the same pragmas, for a transaction
        run whole on a worker thread: one thread hop, where aiosqlite makes one per statement.

        None for PostgreSQL (asyncpg needs no threads) and for in-memory SQLite."""
        if self._thread_engine is None and self.dialect == "sqlite":
            if sqlite_path(self.url) is None:
                return None
            engine = create_engine(
                self.url.set(drivername="sqlite+pysqlite"), pool_size=2, echo=self._echo
            )
            event.listen(engine, "connect", _set_sqlite_pragmas)
            self._thread_engine = engine
        return self._thread_engine

    async def close(self) -> None:
        """Close every pooled connection. The object must not be used afterwards."""
        if self._thread_engine is not None:
            self._thread_engine.dispose()
        await self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"
