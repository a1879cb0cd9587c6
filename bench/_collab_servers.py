"""The servers of bench/collab.py, each a child process under uvicorn on a free loopback port.

``running_gateway`` runs the gateway as ``vibecode up`` configures it (a fresh SQLite database in
a temp dir); ``running_baseline`` a bare python-socketio server (``create_baseline_app``) that
receives an ``edit`` and emits it to everyone else, doing no other work: the floor the
collaboration path is compared with. Both are imported as ``bench.*`` modules from the
repository root (so ``import sandbox`` is the repository's package, not ``bench/sandbox.py``).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import socketio
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench._targets import (
    ROOT,
    _die_with_parent,
    _environment,
    _free_port,
    _stop,
    _wait_healthy,
)

__all__ = ["create_baseline_app", "running_baseline", "running_gateway"]


def create_baseline_app() -> socketio.ASGIApp:
    sio = socketio.AsyncServer(async_mode="asgi")

    @sio.on("edit")  # type: ignore[misc]
    async def edit(sid: str, data: bytes) -> None:
        await sio.emit("edit", data, skip_sid=sid)

    async def healthz(_request: Any) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return socketio.ASGIApp(sio, other_asgi_app=Starlette(routes=[Route("/healthz", healthz)]))


@contextmanager
def _running_app(factory: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ASGI app ``factory`` (``module:function``) under uvicorn; yield its base URL."""
    port = _free_port()
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "auto"
    with tempfile.TemporaryDirectory(prefix="vc-b-app-") as workdir:
        log_path = Path(workdir) / "server.log"
        command = [
            sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1",
            "--port", str(port), "--no-access-log", "--loop", loop, "--log-level", "warning",
        ]  # fmt: skip
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, process, log_path, 120.0)
            yield url
        except BaseException:
            # The server's side of the story; its log goes with its temp dir.
            print(log_path.read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            _stop(process, graceful_s=0.0)


@contextmanager
def running_baseline() -> Iterator[str]:
    """The bare Socket.IO server in a child process."""
    with _running_app("bench._collab_servers:create_baseline_app") as url:
        yield url


@contextmanager
def running_gateway(env: dict[str, str] | None = None) -> Iterator[str]:
    """The gateway in a child process, on a fresh migrated SQLite database; ``env`` adds
    settings (``VIBECODE_...``) on top of the defaults."""
    from cluster.settings import load_settings
    from state.migrations import upgrade

    with tempfile.TemporaryDirectory(prefix="vc-b-gw-") as workdir:
        data_dir = Path(workdir) / "data"
        upgrade(load_settings(data_dir=data_dir).database_url)
        with _running_app(
            "bench._uvicorn_app:create_app", _environment(data_dir, env or {})
        ) as url:
            yield url
