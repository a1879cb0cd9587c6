"""A Redis for tests: ``REDIS_URL`` if set, else a throwaway ``redis-server`` on loopback.

Tests only touch keys and channels under the run's prefix; on a shared server, cleanup deletes
exactly those keys (never FLUSHALL/FLUSHDB).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.harness.processes import free_port, stop_pid, track_pid, wait_until

__all__ = ["RedisServer", "start_throwaway_redis", "use_existing_redis"]


@dataclass
class RedisServer:
    url: str
    origin: str
    version: str = ""
    stop: Callable[[], None] | None = None

    def describe(self) -> str:
        return f"redis {self.version} at {self.url} ({self.origin})"

    def load_version(self) -> None:
        with redis.Redis.from_url(self.url, socket_timeout=5) as client:
            self.version = str(client.info("server")["redis_version"])

    def delete_keys(self, prefix: str) -> int:
        """Delete every key under ``prefix`` (the run's own keys)."""
        deleted = 0
        with redis.Redis.from_url(self.url, socket_timeout=5) as client:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{prefix}*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += int(client.delete(*batch))
                    batch.clear()
            if batch:
                deleted += int(client.delete(*batch))
        return deleted

    def close(self) -> None:
        if self.stop is not None:
            self.stop()


def use_existing_redis(url: str) -> RedisServer:
    server = RedisServer(url=url, origin="REDIS_URL")
    server.load_version()
    return server


def start_throwaway_redis(run_id: str) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not installed")
    workdir = Path(tempfile.mkdtemp(prefix=f"{run_id}-redis-"))
    port = free_port()
    log = (workdir / "redis.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()

    def stop() -> None:
        try:
            stop_pid(process.pid, popen=process)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    track_pid(process.pid, stop)
    server = RedisServer(url=f"redis://127.0.0.1:{port}/0", origin="throwaway", stop=stop)
    try:
        wait_until(lambda: _answers(server.url), timeout_s=10, what="redis-server")
        server.load_version()
    except BaseException:
        stop()
        raise
    return server


def _answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.ConnectionError:
        return False
