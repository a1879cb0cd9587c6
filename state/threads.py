"""Blocking calls on a worker thread that outlives the call.

``anyio.to_thread.run_sync`` ties its worker threads to the event loop's *root task*. A Ray actor
or a Serve replica runs its loop with ``run_forever`` and every call as its own task, so anyio
takes the calling task for the root and ends the thread when that call returns: every blocking
call then started a new thread (~0.3-0.5 ms on these machines, twice per file write). This pool
is per process and keeps its threads.

Like anyio's default, a cancelled caller still waits for the thread to finish before it sees the
cancellation, so a commit running on a thread never outlives the request that started it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["run_sync"]

_T = TypeVar("_T")
# anyio's default limit is 40 threads; the file I/O here needs fewer.
MAX_THREADS = min(32, (os.cpu_count() or 1) + 8)

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_pid = 0


def _pool() -> ThreadPoolExecutor:
    global _executor, _executor_pid
    pid = os.getpid()
    if _executor is None or _executor_pid != pid:  # a forked child needs its own threads
        with _lock:
            if _executor is None or _executor_pid != pid:
                _executor = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="vibecode-io")
                _executor_pid = pid
    return _executor


async def run_sync(func: Callable[..., _T], *args: object) -> _T:
    """``func(*args)`` on the process's worker pool; cancellation waits for it to finish."""
    future = asyncio.get_running_loop().run_in_executor(_pool(), functools.partial(func, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                continue
            except BaseException:  # noqa: BLE001 - the caller was cancelled: that is what it sees
                break
        raise
