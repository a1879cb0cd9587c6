"""Session services for every test layer: PostgreSQL, Redis and S3, started lazily.

Each service comes from the environment when set (``DATABASE_URL``, ``REDIS_URL``) or is a
throwaway server started on loopback the first time a test asks for it, and stopped by PID at
the end of the session. Everything a test creates carries the run id (``vc<hex8>``).
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from state.db import Database
from state.migrations import upgrade
from tests.harness.postgres import PostgresServer, start_throwaway_postgres, use_existing_postgres
from tests.harness.redis_server import RedisServer, start_throwaway_redis, use_existing_redis
from tests.harness.run import RUN_ID, next_name, next_number, record, summary_lines
from tests.harness.s3_server import S3Server, start_s3_server


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # `timeout` and CI cancellations send SIGTERM, which skips fixture teardown and leaks the
    # throwaway servers; as KeyboardInterrupt, pytest tears the session down first.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture(scope="session")
def run_id() -> str:
    """The id that tags every database, bucket, key and channel this run creates."""
    return RUN_ID


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    database_url = os.environ.get("DATABASE_URL")
    if database_url:
        server = use_existing_postgres(database_url)
    else:
        try:
            server = start_throwaway_postgres(RUN_ID)
        except FileNotFoundError as exc:
            pytest.skip(f"no PostgreSQL: {exc}")
    try:
        record("database backends", server.describe())
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_server_url(postgres_server: PostgresServer) -> str:
    """``postgresql+asyncpg://`` URL of the server's maintenance database."""
    return postgres_server.url_for(postgres_server.admin_url.database or "postgres")


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> str:
    """A database migrated to head, cloned by every test that needs PostgreSQL."""
    name = postgres_server.create_database(f"{RUN_ID}_template")
    upgrade(postgres_server.url_for(name))
    return name


# --- Databases per test -----------------------------------------------------------------------


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database migrated to head, on SQLite and on PostgreSQL."""
    yield from _fresh_database(request, tmp_path)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ],
)
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Like ``db_url``, shared by a module's tests (for costly setups such as a deployment)."""
    yield from _fresh_database(request, tmp_path_factory.mktemp("db"))


def _fresh_database(request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    """A database migrated to head for ``request.param``; dropped afterwards (PostgreSQL)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / 'vibecode.db'}"
        upgrade(url)
        record("database backends", f"sqlite {sqlite3.sqlite_version}")
        yield url
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    template: str = request.getfixturevalue("postgres_template")
    name = server.create_database(next_name(), template=template)
    try:
        yield server.url_for(name)
    finally:
        server.drop_database(name)


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """An open ``Database`` on ``db_url``."""
    db = Database(db_url, pool_size=2)
    try:
        yield db
    finally:
        await db.close()


# --- Redis ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    url = os.environ.get("REDIS_URL")
    if url:
        server = use_existing_redis(url)
    else:
        try:
            server = start_throwaway_redis(RUN_ID)
        except FileNotFoundError as exc:
            pytest.skip(f"no Redis: {exc}")
    try:
        record("redis", server.describe())
        yield server
    finally:
        try:
            if server.stop is None:  # A shared server: remove only our own keys.
                server.delete_keys(f"{RUN_ID}:")
        finally:
            server.close()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def redis_key_prefix() -> str:
    """A per-test prefix under the run id for keys and channels (``vc1a2b3c4d:7:``)."""
    return f"{RUN_ID}:{next_number()}:"


# --- S3 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = start_s3_server(RUN_ID)
    try:
        record("s3", server.description)
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> str:
    """The run's bucket (``<run id>-blobs``); tests use their own key prefix inside it."""
    return s3_server.bucket


# --- Report -----------------------------------------------------------------------------------


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = summary_lines()
    if lines:
        terminalreporter.section(f"services (run {RUN_ID})", sep="-")
        for line in lines:
            terminalreporter.write_line(line)


# --- Ray and a private dockerd: one per session, started only when a test asks for it ----------

from tests.harness.dockerd import _stop_private_dockerd, docker_backend  # noqa: E402, F401
from tests.harness.ray_cluster import free_port, ray_address, serve_port  # noqa: E402, F401
