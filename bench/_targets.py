"""The servers under test, each a child process on a free loopback port with its own SQLite db.

``running_target`` yields once the gateway answers ``/healthz`` and always stops the child by its
PID on the way out: a Serve child gets its stdin closed (it then shuts Serve and Ray down), then
SIGTERM, then SIGKILL. Children also get SIGTERM if the bench itself dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["TARGETS", "Target", "running_target"]

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
_PR_SET_PDEATHSIG = 1

# name -> how it is started; "uvicorn" is the baseline the others are compared with.
TARGETS = {
    "uvicorn": "bare uvicorn",
    "serve-haproxy": "Serve + HAProxy",
    "serve-proxy": "Serve, Python proxy",
}


@dataclass(frozen=True)
class Target:
    name: str
    base_url: str
    pid: int
    log_path: Path


# The server binds its port ~20 s after we pick it (Ray starts first). A kernel-chosen port is an
# ephemeral one (32768-60999), as are the ports other Ray clusters on the machine keep binding,
# so one of them could take it and the bench would talk to someone else's server. Ray's worker
# ports are 10002-19999: pick from the range between.
_PORT_RANGE = (20000, 32000)


def _free_port() -> int:
    for _ in range(100):
        port = random.randrange(*_PORT_RANGE)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PORT_RANGE}")


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _command(name: str, port: int, data_dir: Path) -> list[str]:
    if name == "uvicorn":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "auto"
        return [
            sys.executable, "-m", "uvicorn", "--factory", "_uvicorn_app:create_app",
            "--app-dir", str(BENCH_DIR), "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--loop", loop, "--log-level", "warning",
        ]  # fmt: skip
    ingress = name.removeprefix("serve-")
    return [
        sys.executable, str(BENCH_DIR / "_serve_target.py"), "--data-dir", str(data_dir),
        "--port", str(port), "--ingress", ingress,
    ]  # fmt: skip


def _environment(data_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    # The platform's defaults, as `make up` has them: drop any VIBECODE_* of the caller's shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIBECODE_", "RAY_"))}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "VIBECODE_DATA_DIR": str(data_dir),
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
    )
    env.update(extra)
    return env


def _wait_healthy(
    url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{url}: server exited with {process.returncode}:\n{tail}")
        try:
            response = httpx.get(f"{url}/healthz", timeout=2.0)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise RuntimeError(f"{url}/healthz did not answer 200 within {timeout_s:.0f}s ({last})")


def _stop(process: subprocess.Popen[bytes], *, graceful_s: float) -> None:
    """Stop the child: close its stdin and wait ``graceful_s``, then SIGTERM, then SIGKILL."""
    if process.stdin is not None:
        process.stdin.close()
    for send, grace_s in ((None, graceful_s), (signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        if send is not None and process.poll() is None:
            os.kill(process.pid, send)
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def running_target(
    name: str, *, serve_env: Mapping[str, str], startup_timeout_s: float = 180.0
) -> Iterator[Target]:
    """Start target ``name`` on a fresh migrated SQLite db and yield it once it is healthy."""
    from cluster.settings import load_settings
    from state.migrations import upgrade

    workdir = Path(tempfile.mkdtemp(prefix="vc-b-"))
    try:
        data_dir = workdir / "data"
        upgrade(load_settings(data_dir=data_dir).database_url)
        port = _free_port()
        log_path = workdir / "server.log"
        # The app's own settings (VIBECODE_*) apply to every target; Ray's only to Serve.
        extra = {
            k: v for k, v in serve_env.items() if name != "uvicorn" or k.startswith("VIBECODE_")
        }
        env = _environment(data_dir, extra)
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                _command(name, port, data_dir),
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, process, log_path, startup_timeout_s)
            yield Target(name=name, base_url=url, pid=process.pid, log_path=log_path)
        finally:
            # A Serve child shuts Serve and Ray down when its stdin closes; uvicorn needs SIGTERM.
            _stop(process, graceful_s=0.0 if name == "uvicorn" else 60.0)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
