"""Starting and reliably stopping helper processes, by PID.

Every process started here is registered; fixtures stop their own at teardown, and an
``atexit`` hook stops whatever is left if the session dies half-way.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["free_port", "pid_alive", "stop_pid", "track_pid", "untrack_pid", "wait_until"]

_TRACKED: dict[int, Callable[[], None]] = {}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s")
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state != "Z"


def stop_pid(
    pid: int,
    *,
    popen: subprocess.Popen[bytes] | None = None,
    first_signal: int = signal.SIGTERM,
    grace_s: float = 3.0,
) -> None:
    """Signal ``pid``, wait up to ``grace_s``, then SIGKILL it; reap it if it is our child."""
    untrack_pid(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, first_signal)
    deadline = time.monotonic() + grace_s
    while pid_alive(pid) and time.monotonic() < deadline:
        if popen is not None and popen.poll() is not None:
            break
        time.sleep(0.02)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if popen is not None:
        popen.wait(timeout=10)


def track_pid(pid: int, stop: Callable[[], None]) -> None:
    _TRACKED[pid] = stop


def untrack_pid(pid: int) -> None:
    _TRACKED.pop(pid, None)


@atexit.register
def _stop_leftovers() -> None:
    for pid, stop in list(_TRACKED.items()):
        try:
            stop()
        except OSError:
            os.kill(pid, signal.SIGKILL)
