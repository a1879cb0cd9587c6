"""SandboxPoolCore on the fake backend and, where it runs, the real bubblewrap one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors.sandbox_pool import LeaseExpired, SandboxPoolCore
from sandbox import (
    ExecRequest,
    SandboxBackend,
    SandboxLimits,
    SandboxNotFound,
    SandboxSettings,
    StartRequest,
)
from tests.contract.sandbox_backends import open_test_backend


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pool_settings(**overrides: object) -> SandboxSettings:
    values: dict[str, object] = {
        "pool_size": 2,
        "max_concurrent_creates": 2,
        "idle_timeout_s": 60.0,
        "max_lifetime_s": 600.0,
        "max_exec_timeout_s": 1.0,
        "default_limits": SandboxLimits(exec_timeout_s=0.4),
    }
    values.update(overrides)
    return SandboxSettings.model_validate(values)


@pytest.fixture(params=["fake", "bubblewrap"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[SandboxBackend]:
    async with open_test_backend(request.param) as opened:
        yield opened


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "hello.txt").write_text("from the host\n")
    return root


async def filled(pool: SandboxPoolCore, count: int) -> None:
    for _ in range(200):
        await pool.maintain()
        if pool.stats().warm >= count and pool.stats().creating == 0:
            return
        await _tick()
    raise AssertionError(f"the pool never reached {count} warm sandboxes: {pool.stats()}")


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.02)


async def test_lease_binds_the_tree_and_release_resets(backend: SandboxBackend, tree: Path) -> None:
    async with SandboxPoolCore(backend, pool_settings()) as pool:
        await filled(pool, 2)
        lease = await pool.lease("ws-1", tree)
        assert pool.stats().leased == 1
        assert await pool.lease("ws-1", tree) == lease  # One lease per workspace.
        result = await pool.exec(lease, ExecRequest(shell="cat hello.txt; echo made > new.txt"))
        assert result.stdout == b"from the host\n"
        assert (tree / "new.txt").read_text() == "made\n"
        await pool.exec(lease, ExecRequest(shell="echo scratch > $TMPDIR/x 2>/dev/null || true"))
        await pool.start_process(lease, StartRequest(shell="sleep 60"))
        await pool.release(lease)
        assert pool.stats().leased == 0
        with pytest.raises(LeaseExpired):
            await pool.exec(lease, ExecRequest(shell="true"))
        # The recycled sandbox is back in the pool, wiped: no workspace, no process.
        again = await pool.lease("ws-2", tree.parent)
        assert again.sandbox_id in {lease.sandbox_id} | {again.sandbox_id}
        listed = await pool.list_processes(again)
        assert not any(p.running for p in listed)
        await pool.release(again)
        await filled(pool, 2)


async def test_the_pool_keeps_its_warm_count(backend: SandboxBackend, tree: Path) -> None:
    async with SandboxPoolCore(backend, pool_settings(pool_size=2)) as pool:
        await filled(pool, 2)
        leases = [await pool.lease(f"ws-{i}", tree) for i in range(3)]  # One beyond the pool.
        await filled(pool, 2)
        assert pool.stats().leased == 3
        for lease in leases:
            await pool.release(lease)
        assert pool.stats().warm >= 2


async def test_command_timeout_defaults_and_is_capped(backend: SandboxBackend, tree: Path) -> None:
    async with SandboxPoolCore(backend, pool_settings(pool_size=1)) as pool:
        lease = await pool.lease("ws", tree)
        default = await pool.exec(lease, ExecRequest(shell="sleep 5"))
        assert default.timed_out
        assert default.duration_ms < 900
        capped = await pool.exec(lease, ExecRequest(shell="sleep 5", timeout_s=100))
        assert capped.timed_out
        assert 900 <= capped.duration_ms < 2000
        await pool.release(lease)


async def test_a_broken_sandbox_is_replaced(tree: Path) -> None:
    async with (
        open_test_backend("fake") as backend,
        SandboxPoolCore(backend, pool_settings(pool_size=1)) as pool,
    ):
        await filled(pool, 1)
        lease = await pool.lease("ws", tree)
        # The sandbox dies under the lease: the pool forgets it and the next lease works.
        await backend.destroy(lease.sandbox_id)
        with pytest.raises(SandboxNotFound):
            await pool.exec(lease, ExecRequest(shell="true"))
        await pool.release(lease)
        fresh = await pool.lease("ws", tree)
        assert fresh.sandbox_id != lease.sandbox_id
        assert (await pool.exec(fresh, ExecRequest(shell="echo ok"))).stdout == b"ok\n"
        await pool.release(fresh)
        # A warm sandbox that died is replaced by maintenance.
        await filled(pool, 1)
        dead = pool._warm[0].sandbox_id
        await backend.destroy(dead)
        await filled(pool, 1)
        assert dead not in {s.sandbox_id for s in pool._warm}


async def test_idle_surplus_and_lifetime_recycle(tree: Path) -> None:
    clock = Clock()
    settings = pool_settings(pool_size=1, idle_timeout_s=10.0, max_lifetime_s=100.0)
    async with (
        open_test_backend("fake") as backend,
        SandboxPoolCore(backend, settings, clock=clock) as pool,
    ):
        await filled(pool, 1)
        leases = [await pool.lease(f"ws-{i}", tree) for i in range(2)]
        for lease in leases:
            await pool.release(lease)
        await filled(pool, 1)
        assert pool.stats().warm == 3  # Surplus beyond the minimum, not yet idle long.
        clock.now += 11
        await pool.maintain()
        assert pool.stats().warm == 1  # Idle surplus destroyed; the minimum stays.
        first = pool._warm[0].sandbox_id
        clock.now += 101
        await filled(pool, 1)
        assert first not in {s.sandbox_id for s in pool._warm}  # Past its lifetime.
        # A lease nobody uses for twice the idle timeout is ended (its owner died).
        orphan = await pool.lease("ws-orphan", tree)
        clock.now += 21
        await pool.maintain()
        with pytest.raises(LeaseExpired):
            await pool.exec(orphan, ExecRequest(shell="true"))
