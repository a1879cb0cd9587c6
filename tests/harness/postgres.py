"""A PostgreSQL server for tests: ``DATABASE_URL`` if set, else a throwaway cluster.

Tests get their own database, cloned from a migrated template (about 80 ms). Only databases
this run created are ever dropped.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.engine import URL, make_url

from tests.harness.processes import free_port, stop_pid, track_pid

__all__ = ["PostgresServer", "start_throwaway_postgres", "use_existing_postgres"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
_T = TypeVar("_T")


def _run_async(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine on a private thread and loop, away from pytest-asyncio's loops."""

    async def main() -> _T:
        return await make()

    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(lambda: asyncio.run(main())).result()


@dataclass
class PostgresServer:
    admin_url: URL  # postgresql+asyncpg://...@host:port/<maintenance db>
    origin: str  # "DATABASE_URL" or "throwaway"
    stop: Callable[[], None] | None = None
    created: list[str] = field(default_factory=list)
    version: str = ""

    def url_for(self, database: str) -> str:
        return self.admin_url.set(database=database).render_as_string(hide_password=False)

    def _dsn(self) -> str:
        return self.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)

    def _admin(self, *statements: str) -> list[Any]:
        async def run() -> list[Any]:
            connection = await asyncpg.connect(self._dsn(), timeout=10)
            try:
                return [await connection.fetchval(statement) for statement in statements]
            finally:
                await connection.close()

        return _run_async(run)

    def describe(self) -> str:
        host = f"{self.admin_url.host}:{self.admin_url.port or 5432}"
        return f"postgresql {self.version} at {host} ({self.origin})"

    def load_version(self) -> None:
        self.version = str(self._admin("SHOW server_version")[0]).split()[0]

    def create_database(self, name: str, *, template: str | None = None) -> str:
        clause = f' TEMPLATE "{template}"' if template else ""
        self.created.append(name)
        self._admin(f'CREATE DATABASE "{name}"{clause}')
        return name

    def drop_database(self, name: str) -> None:
        if name not in self.created:
            raise RuntimeError(f"refusing to drop {name}: this run did not create it")
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.remove(name)

    def close(self) -> None:
        try:
            for name in list(reversed(self.created)):
                self.drop_database(name)
        finally:
            if self.stop is not None:
                self.stop()


def use_existing_postgres(database_url: str) -> PostgresServer:
    url = make_url(database_url)
    server = PostgresServer(
        admin_url=url.set(drivername="postgresql+asyncpg"), origin="DATABASE_URL"
    )
    server.load_version()
    return server


def start_throwaway_postgres(run_id: str) -> PostgresServer:
    """initdb + pg_ctl a fresh cluster (fsync off) on a free loopback port."""
    if not (PG_BIN / "initdb").exists():
        raise FileNotFoundError(f"PostgreSQL binaries not found in {PG_BIN}")
    base = Path(tempfile.mkdtemp(prefix=f"{run_id}-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user.
        account = pwd.getpwnam("postgres")
        os.chown(base, account.pw_uid, account.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()
    options = f"-F -p {port} -k {base} -c listen_addresses=127.0.0.1"
    try:
        subprocess.run(
            [
                *as_postgres,
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *as_postgres,
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(base / "log"),
                "-w",
                "-t",
                "30",
                "-o",
                options,
                "start",
            ],
            check=True,
            capture_output=True,
        )
    except BaseException:
        _stop_cluster(data, base)
        raise
    pid = _postmaster_pid(data)

    def stop() -> None:
        _stop_cluster(data, base, pid)

    track_pid(pid, stop)
    url = URL.create(
        "postgresql+asyncpg", username="postgres", host="127.0.0.1", port=port, database="postgres"
    )
    server = PostgresServer(admin_url=url, origin="throwaway", stop=stop)
    try:
        server.load_version()
    except BaseException:
        stop()
        raise
    return server


def _postmaster_pid(data: Path) -> int:
    return int((data / "postmaster.pid").read_text().splitlines()[0])


def _stop_cluster(data: Path, base: Path, pid: int | None = None) -> None:
    try:
        if pid is None and (data / "postmaster.pid").exists():
            pid = _postmaster_pid(data)
        if pid is not None:
            # SIGQUIT is PostgreSQL's immediate shutdown: the cluster is disposable.
            stop_pid(pid, first_signal=signal.SIGQUIT, grace_s=10)
    finally:
        shutil.rmtree(base, ignore_errors=True)
