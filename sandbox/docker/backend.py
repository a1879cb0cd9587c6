"""The docker backend: each sandbox is one long-lived container running the supervisor.

The container is created with every limit (see ``container.py``) and started with its
stdio attached, so a command in a warm sandbox costs a process spawn inside it, never a
``docker exec``. Must run as root on the docker host: /workspace is a per-sandbox *slot*
directory (shared mount) bind-mounted ``rslave``, and a workspace is attached later by
bind-mounting it on the slot, which propagates into the running container. Destroy removes
the container (force), which kills everything in it, daemons included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, Self, cast

import anyio.to_thread
import docker
from docker.models.containers import Container

from sandbox import mounts
from sandbox.docker.attach import AttachedStdio, open_attached, raw_socket
from sandbox.docker.container import container_options
from sandbox.docker.errors import docker_errors
from sandbox.docker.usage import container_cgroup
from sandbox.errors import SandboxLimitInvalid, SandboxUnavailable
from sandbox.launch import supervisor_config
from sandbox.settings import DockerSettings
from sandbox.slotted import SlotState, SlottedBackend
from sandbox.supervised import Launched, RunningSandbox, new_sandbox_id
from sandbox.types import SandboxSpec

__all__ = ["DockerBackend", "unavailable_reason"]


def unavailable_reason() -> str | None:
    """Why this process cannot drive the backend (before asking the daemon), or None."""
    if os.geteuid() != 0:
        return "must run as root on the docker host (it mounts workspaces into containers)"
    return None


@dataclass(kw_only=True)
class _State(SlotState):
    container: Container
    stdio: AttachedStdio


class DockerBackend(SlottedBackend):
    name = "docker"

    def __init__(self, settings: DockerSettings) -> None:
        super().__init__(
            state_dir=settings.state_dir,
            sandbox_uid=settings.sandbox_uid,
            sandbox_gid=settings.sandbox_gid,
            workspace_check_interval_s=settings.workspace_check_interval_s,
        )
        reason = unavailable_reason()
        if reason is not None:
            raise SandboxUnavailable("docker", reason)
        self._settings = settings
        self._client: docker.DockerClient | None = None

    async def __aenter__(self) -> Self:
        settings = self._settings
        with docker_errors("create"):
            client = docker.DockerClient(
                base_url=settings.docker_host, timeout=int(settings.api_timeout_s)
            )
            try:
                await anyio.to_thread.run_sync(client.ping)
                await anyio.to_thread.run_sync(client.images.get, settings.image)
            except BaseException:
                client.close()
                raise
        self._client = client
        await asyncio.to_thread(settings.state_dir.mkdir, mode=0o711, parents=True, exist_ok=True)
        return await super().__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
        finally:
            client, self._client = self._client, None
            if client is not None:
                client.close()

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            raise RuntimeError("use the docker backend as `async with`")
        return self._client

    # --- SupervisedBackend hooks ------------------------------------------------------------

    async def _launch(self, spec: SandboxSpec) -> tuple[Launched, Any]:
        if spec.network and not self._settings.allow_network:
            raise SandboxLimitInvalid("network", True, "network is disabled in the settings")
        sandbox_id = new_sandbox_id()
        sandbox_dir = self._settings.state_dir / sandbox_id
        slot = await asyncio.to_thread(mounts.create_slot, sandbox_dir)
        options = container_options(
            self._settings,
            spec,
            sandbox_id=sandbox_id,
            slot=slot,
            config=supervisor_config(spec, rlimit_fallback=False),
        )
        container: Container | None = None
        try:
            with docker_errors("create"):
                container = await self._call(
                    self.client.containers.create, self._settings.image, **options
                )
                params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
                sdk_socket = await self._call(
                    self.client.api.attach_socket, container.id, params=params
                )
                stdio = await open_attached(raw_socket(sdk_socket))
                await self._call(container.start)
                await self._call(container.reload)
        except BaseException:
            if container is not None:
                await self._remove(container)
            mounts.remove_slot(sandbox_dir)
            raise
        state = _State(
            sandbox_dir=sandbox_dir,
            slot=slot,
            cgroup=container_cgroup(container.attrs),
            container=container,
            stdio=stdio,
        )
        self._spawn(stdio.demultiplex())
        enforcement = state.cgroup.mode if state.cgroup is not None else "none"
        # The backend needs only the process's stdio, which the attach connection provides.
        process = cast(asyncio.subprocess.Process, stdio)
        return Launched(sandbox_id, process, enforcement), state

    async def _kill(self, sandbox: RunningSandbox) -> None:
        state: _State = sandbox.backend_state
        state.watchdog.set()
        try:
            await self._remove(state.container)
        finally:
            state.stdio.close()
            await asyncio.to_thread(self._release, state)

    # --- helpers ----------------------------------------------------------------------------

    async def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking SDK call in a worker thread."""
        return await anyio.to_thread.run_sync(partial(function, *args, **kwargs))

    async def _remove(self, container: Container) -> None:
        """Force-remove (SIGKILL then delete); a container already gone counts as removed."""
        with (
            docker_errors("use", container.name or ""),
            contextlib.suppress(docker.errors.NotFound),
        ):
            await self._call(container.remove, force=True, v=True)
