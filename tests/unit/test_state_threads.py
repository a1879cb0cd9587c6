"""``state.threads.run_sync``: worker threads outlive the call; a cancelled caller waits."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from state.threads import run_sync


def test_calls_on_a_loop_run_as_ray_runs_it_reuse_the_same_threads() -> None:
    # A Ray actor's loop runs forever on its own thread and every call is a task handed to it
    # from outside: there is no root task (anyio's threads died with each call).
    seen = threading.local()
    fresh: list[bool] = []

    def note_thread() -> None:
        fresh.append(not getattr(seen, "used", False))
        seen.used = True

    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        for _ in range(20):
            asyncio.run_coroutine_threadsafe(run_sync(note_thread), loop).result(5)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()
    assert sum(fresh) == 1, f"{sum(fresh)} threads started for 20 sequential calls"


async def test_a_cancelled_caller_sees_the_cancellation_only_after_the_call_finished() -> None:
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.2)
        finished.set()

    task = asyncio.create_task(run_sync(slow))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()


async def test_errors_reach_the_caller() -> None:
    def fail() -> None:
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        await run_sync(fail)
