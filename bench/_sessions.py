"""Many sessions in one WorkspaceHost process against one Ray actor per workspace.

Runs on a private local Ray started here (``RAY_AUTH_MODE=disabled``, no dashboard, a short
``_temp_dir``) with its own migrated SQLite database and blob folder, all in a temp dir that is
removed afterwards; ``ray.shutdown()`` stops every process it started.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _procfs import cpu_seconds, pss_kib, rss_kib, tick_s

__all__ = ["ActorCost", "SessionsReport", "measure_sessions"]

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
NAMESPACE = "vc-bench-files"
WARM_SESSIONS = 20


@dataclass
class ActorCost:
    create_s: float
    rss_kib: int
    pss_kib: int
    idle_cpu_s: float


@dataclass
class SessionsReport:
    sessions: int
    idle_window_s: float
    host_create_s: float = 0.0
    host_rss_start_kib: int = 0
    host_pss_start_kib: int = 0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    pss_before_kib: int = 0
    pss_after_kib: int = 0
    idle_cpu_empty_s: float = 0.0
    idle_cpu_full_s: float = 0.0
    open_in_host_s: list[float] = field(default_factory=list)
    open_call_s: list[float] = field(default_factory=list)
    first_write_s: list[float] = field(default_factory=list)
    second_write_s: list[float] = field(default_factory=list)
    actors: list[ActorCost] = field(default_factory=list)
    cpu_tick_s: float = field(default_factory=tick_s)
    open_sessions_reported: int = 0


async def _create_workspaces(url: str, count: int) -> list[str]:
    from actors.workspace.catalog import WorkspaceCatalog
    from state.db import Database
    from state.models import User, new_id

    db = Database(url)
    try:
        user_id = new_id()
        async with db.session() as session, session.begin():
            session.add(User(id=user_id, email=f"{user_id}@example.com", password_hash=None))
        catalog = WorkspaceCatalog(db)
        return [
            (await catalog.create(user_id, name=f"ws-{k}", template="blank")).id
            for k in range(count)
        ]
    finally:
        await db.close()


def _idle_cpu(pids: list[int], window_s: float) -> list[float]:
    before = [cpu_seconds(pid) for pid in pids]
    time.sleep(window_s)
    return [cpu_seconds(pid) - start for pid, start in zip(pids, before, strict=True)]


def measure_sessions(
    *,
    sessions: int,
    first_writes: int,
    actors: int,
    idle_window_s: float,
    say: Callable[[str], None] = print,
) -> SessionsReport:
    """Open ``sessions`` workspaces on one host actor; compare with ``actors`` trivial actors."""
    workdir = Path(tempfile.mkdtemp(prefix="vc-f-"))
    ray_dir = Path(tempfile.mkdtemp(prefix="vc-f-"))
    os.environ.update(
        {
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            # Workers import the platform and this bench's actor subclass by module name.
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH_DIR)]),
        }
    )
    import ray

    try:
        from state.migrations import upgrade

        url = f"sqlite+aiosqlite:///{workdir / 'vibecode.db'}"
        upgrade(url)
        started = time.perf_counter()
        workspace_ids = asyncio.run(
            _create_workspaces(url, WARM_SESSIONS + sessions + first_writes)
        )
        say(f"  {len(workspace_ids)} workspace rows in {time.perf_counter() - started:.1f}s")
        ray.init(
            address="local",
            namespace=NAMESPACE,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=str(ray_dir),
        )
        return _measure(workdir, url, workspace_ids, sessions, first_writes, actors,
                        idle_window_s, say)  # fmt: skip
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(ray_dir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _measure(
    workdir: Path,
    url: str,
    workspace_ids: list[str],
    sessions: int,
    first_writes: int,
    actors: int,
    idle_window_s: float,
    say: Callable[[str], None],
) -> SessionsReport:
    import ray as ray_module
    from _openable_host import OpenableHost

    from actors.workspace.actor import HostConfig
    from actors.workspace.api import Author
    from actors.workspace.ray_writer import HOST_MAX_CONCURRENCY
    from actors.workspace.settings import WorkspaceSettings
    from state.settings import DatabaseSettings, LocalBlobSettings

    report = SessionsReport(sessions=sessions, idle_window_s=idle_window_s)
    warm = workspace_ids[:WARM_SESSIONS]
    opened = workspace_ids[WARM_SESSIONS : WARM_SESSIONS + sessions]
    written = workspace_ids[WARM_SESSIONS + sessions :]
    config = HostConfig(
        db=DatabaseSettings(url=url),
        blob=LocalBlobSettings(root=workdir / "blobs"),
        workspace=WorkspaceSettings(hosts=1, trees_dir=workdir / "trees"),
    )
    # The options RayWorkspaceWriter.handle uses, minus "detached": ray.shutdown() must stop it.
    started = time.perf_counter()
    host: Any = (
        ray_module.remote(OpenableHost)
        .options(
            name="ws-host:0",
            num_cpus=0,
            max_restarts=0,
            max_concurrency=HOST_MAX_CONCURRENCY,
        )
        .remote("ws-host:0", config)
    )
    pid = int(ray_module.get(host.ping.remote())["pid"])
    report.host_create_s = time.perf_counter() - started
    report.host_rss_start_kib, report.host_pss_start_kib = rss_kib(pid), pss_kib(pid)
    say(
        f"  host actor pid {pid} up in {report.host_create_s:.2f}s, RSS {rss_kib(pid) / 1024:.0f} MiB"
    )

    @ray_module.remote(num_cpus=0)
    class Trivial:
        def pid(self) -> int:
            return os.getpid()

    trivial = []
    for _ in range(actors):
        started = time.perf_counter()
        handle = Trivial.remote()  # type: ignore[attr-defined]
        actor_pid = int(ray_module.get(handle.pid.remote()))
        trivial.append((handle, actor_pid, time.perf_counter() - started))
    say("  trivial actors created in " + ", ".join(f"{t[2]:.2f}s" for t in trivial))

    # Warm the host's code paths and connection pool, then put it back to zero sessions.
    author = Author(user_id=None, kind="system")
    for workspace_id in warm:
        ray_module.get(host.write_file.remote(workspace_id, "warm.txt", b"warm", if_match=None,
                                              author=author))  # fmt: skip
    for workspace_id in warm:
        ray_module.get(host.close.remote(workspace_id))
    time.sleep(1.0)
    pids = [pid, *(t[1] for t in trivial)]
    idle = _idle_cpu(pids, idle_window_s)
    report.idle_cpu_empty_s = idle[0]
    report.actors = [
        ActorCost(create_s=t[2], rss_kib=rss_kib(t[1]), pss_kib=pss_kib(t[1]), idle_cpu_s=cpu)
        for t, cpu in zip(trivial, idle[1:], strict=True)
    ]
    report.rss_before_kib, report.pss_before_kib = rss_kib(pid), pss_kib(pid)

    for workspace_id in opened:
        started = time.perf_counter()
        report.open_in_host_s.append(float(ray_module.get(host.open_session.remote(workspace_id))))
        report.open_call_s.append(time.perf_counter() - started)
    report.open_sessions_reported = int(ray_module.get(host.ping.remote())["open_sessions"])
    time.sleep(1.0)
    report.rss_after_kib, report.pss_after_kib = rss_kib(pid), pss_kib(pid)
    say(
        f"  {sessions} sessions opened: p50 {statistics.median(report.open_call_s) * 1e3:.1f} ms, "
        f"RSS {report.rss_before_kib / 1024:.1f} → {report.rss_after_kib / 1024:.1f} MiB"
    )
    report.idle_cpu_full_s = _idle_cpu([pid], idle_window_s)[0]

    for workspace_id in written:
        for samples in (report.first_write_s, report.second_write_s):
            started = time.perf_counter()
            ray_module.get(host.write_file.remote(workspace_id, "tiny.txt", os.urandom(16),
                                                  if_match=None, author=author))  # fmt: skip
            samples.append(time.perf_counter() - started)
    for handle, _, _ in trivial:
        ray_module.kill(handle)
    ray_module.kill(host)
    return report
