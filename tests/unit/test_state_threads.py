"""``state.threads.run_sync``: worker threads outlive the call; a cancelled caller waits."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from state.threads import MAX_THREADS, run_sync


def test_calls_on_a_loop_run_as_ray_runs_it_keep_their_threads() -> None:
    # A Ray actor's loop runs forever on its own thread and every call is a task handed to it
    # from outside: there is no root task (anyio's threads ended with each call).
    workers: list[threading.Thread] = []
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        for _ in range(20):
            call = run_sync(threading.current_thread)
            workers.append(asyncio.run_coroutine_threadsafe(call, loop).result(5))
        time.sleep(0.3)  # (long enough for a discarded thread to have exited)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()
    distinct = set(workers)
    assert len(distinct) <= MAX_THREADS
    assert all(worker.is_alive() for worker in distinct), "worker threads were discarded"


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
