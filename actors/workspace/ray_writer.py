"""``WorkspaceWriter`` through Ray: each workspace's calls go to the host that owns it."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import ray
import structlog
from ray.actor import ActorHandle
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError

from actors.platform import platform_actor_options
from actors.workspace.actor import HostConfig, WorkspaceHost, WorkspaceHostShell
from actors.workspace.api import (
    Author,
    ExecOutcome,
    PreconditionFailed,
    SessionInfo,
    SyncReport,
    VersionInfo,
    WorkspaceError,
    WorkspaceUnavailable,
    WriteResult,
)
from actors.workspace.channel import CHANNEL_METHODS, ChannelBroken, HostChannels
from actors.workspace.directory import host_names, owner_of
from actors.workspace.live import CollabReply
from sandbox import (
    ExecRequest,
    OutputChunk,
    ProcessInfo,
    ProcessLogs,
    SandboxError,
    StartRequest,
)

__all__ = ["RayWorkspaceWriter", "WorkspaceUnavailable"]

log = structlog.get_logger("workspace.writer")

# A host that died is restarted by Ray in about a second; idempotent calls wait that out.
RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 3.0)
HOST_MAX_CONCURRENCY = 10_000


class RayWorkspaceWriter:
    """Routes each call to the owning ``WorkspaceHost`` actor, creating hosts on first use.

    Non-idempotent calls that fail because their host died are reported as
    ``WorkspaceUnavailable`` (they may or may not have been applied; a version is atomic, so
    it is either wholly there or not at all). ``write_file`` is idempotent and retried.
    """

    def __init__(
        self,
        config: HostConfig,
        *,
        namespace: str,
        setup_process: Any = None,
    ) -> None:
        self._config = config
        self._namespace = namespace
        self._hosts = host_names(config.workspace.hosts)
        self._timeout_s = config.workspace.request_timeout_s
        self._setup_process = setup_process
        self._handles: dict[str, ActorHandle[WorkspaceHostShell]] = {}
        self._channels = HostChannels(self._channel_path)
        self._node_id: str | None = None

    def handle(self, name: str) -> ActorHandle[WorkspaceHostShell]:
        cached = self._handles.get(name)
        if cached is not None:
            return cached
        handle: ActorHandle[WorkspaceHostShell] = WorkspaceHost.options(  # type: ignore[assignment]
            **platform_actor_options(
                name, namespace=self._namespace, max_concurrency=HOST_MAX_CONCURRENCY
            )
        ).remote(name, self._config, self._setup_process, namespace=self._namespace)
        self._handles[name] = handle
        return handle

    async def _call(
        self,
        name: str,
        method: str,
        *args: Any,
        retry: bool,
        timeout_s: float | None = None,
        cancel_remote: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Call ``method`` on host ``name``. ``cancel_remote``: when our caller is cancelled
        (an agent run cancelled, a client gone), cancel the call on the host too; awaiting a
        Ray ref is not enough to stop it."""
        delays = RETRY_DELAYS_S if retry else ()
        timeout_s = timeout_s or self._timeout_s
        attempt = 0
        while True:
            channel = None
            if method in CHANNEL_METHODS and not cancel_remote:
                channel = await self._channels.get(name)
            if channel is not None:
                try:
                    return await asyncio.wait_for(channel.call(method, args, kwargs), timeout_s)
                except ChannelBroken as exc:
                    log.warning("workspace_host.channel_broken", host=name, method=method)
                    self._channels.broke(name, exc)
                    if not exc.sent:  # Nothing went out: this call goes through Ray.
                        continue
                    if attempt >= len(delays):
                        raise WorkspaceUnavailable(
                            "The workspace's host stopped while handling the request; retry."
                        ) from exc
                    await asyncio.sleep(delays[attempt])
                    attempt += 1
                    continue
                except TimeoutError as exc:
                    raise WorkspaceUnavailable(
                        f"The workspace did not answer within {timeout_s:g} s; retry."
                    ) from exc
            handle = self.handle(name)
            try:
                ref = getattr(handle, method).remote(*args, **kwargs)
                try:
                    return await asyncio.wait_for(ref, timeout_s)
                except asyncio.CancelledError:
                    if cancel_remote:
                        ray.cancel(ref)
                    raise
            except RayTaskError as exc:
                cause = exc.cause
                if isinstance(cause, WorkspaceError | SandboxError):
                    raise cause from None
                raise
            except (RayActorError, ActorUnavailableError) as exc:
                if attempt >= len(delays):
                    raise WorkspaceUnavailable(
                        "The workspace's host stopped while handling the request; retry."
                    ) from exc
                log.warning("workspace_host.retry", host=name, method=method, attempt=attempt)
                self._handles.pop(name, None)
                await asyncio.sleep(delays[attempt])
                attempt += 1
            except (TimeoutError, GetTimeoutError) as exc:
                raise WorkspaceUnavailable(
                    f"The workspace did not answer within {timeout_s:g} s; retry."
                ) from exc

    def _owner(self, workspace_id: str) -> str:
        return owner_of(workspace_id, self._hosts)

    def channel_path(self, name: str) -> str | None:
        """The socket this process reaches host ``name`` through, if any (else Ray)."""
        return self._channels.path(name)

    async def _channel_path(self, name: str) -> str | None:
        """Host ``name``'s socket if it runs on our node (one Ray call), else None."""
        address: tuple[str, str] | None = await asyncio.wait_for(
            self.handle(name).channel_address.remote(), self._timeout_s
        )
        if self._node_id is None:
            self._node_id = ray.get_runtime_context().get_node_id()
        return address[1] if address is not None and address[0] == self._node_id else None

    async def write_file(
        self, workspace_id: str, path: str, data: bytes, *, if_match: str | None, author: Author
    ) -> WriteResult:
        owner = self._owner(workspace_id)
        try:
            result: WriteResult = await self._call(
                owner,
                "write_file",
                workspace_id,
                path,
                data,
                if_match=if_match,
                author=author,
                retry=True,
            )
        except PreconditionFailed as exc:
            # A retry after a host died may find our own write already applied.
            if if_match is None or exc.current_sha256 != hashlib.sha256(data).hexdigest():
                raise
            result = await self._call(
                owner, "write_file", workspace_id, path, data, if_match=None, author=author,
                retry=True,
            )  # fmt: skip
        return result

    async def delete_file(
        self, workspace_id: str, path: str, *, if_match: str | None, author: Author
    ) -> VersionInfo:
        result: VersionInfo = await self._call(
            self._owner(workspace_id),
            "delete_file",
            workspace_id,
            path,
            if_match=if_match,
            author=author,
            retry=False,
        )
        return result

    async def move_file(
        self, workspace_id: str, source: str, destination: str, *, author: Author
    ) -> VersionInfo:
        result: VersionInfo = await self._call(
            self._owner(workspace_id),
            "move_file",
            workspace_id,
            source,
            destination,
            author=author,
            retry=False,
        )
        return result

    async def apply_batch(
        self,
        workspace_id: str,
        files: dict[str, bytes | None],
        *,
        author: Author,
        message: str,
        replace_all: bool = False,
        modes: dict[str, int] | None = None,
    ) -> VersionInfo:
        result: VersionInfo = await self._call(
            self._owner(workspace_id),
            "apply_batch",
            workspace_id,
            files,
            author=author,
            message=message,
            replace_all=replace_all,
            modes=modes,
            retry=False,
        )
        return result

    async def restore(self, workspace_id: str, version: int, *, author: Author) -> VersionInfo:
        result: VersionInfo = await self._call(
            self._owner(workspace_id),
            "restore",
            workspace_id,
            version,
            author=author,
            retry=False,
        )
        return result

    async def close(self, workspace_id: str) -> None:
        await self._call(self._owner(workspace_id), "close", workspace_id, retry=True)

    # --- sandbox execution: never retried once sent (a command is not idempotent) -------------

    async def exec(self, workspace_id: str, request: ExecRequest, *, author: Author) -> ExecOutcome:
        sandbox = self._config.sandbox
        longest_s = sandbox.max_exec_timeout_s if sandbox is not None else 0.0
        result: ExecOutcome = await self._call(
            self._owner(workspace_id),
            "exec",
            workspace_id,
            request,
            author=author,
            retry=False,
            timeout_s=longest_s + self._timeout_s,  # The command's own timeout, then ours.
            cancel_remote=True,  # A cancelled caller stops the command (the sandbox resets).
        )
        return result

    async def _stream(self, workspace_id: str, method: str, *args: Any, **kwargs: Any) -> Any:
        handle = self.handle(self._owner(workspace_id))
        refs = getattr(handle, method).remote(workspace_id, *args, **kwargs)
        finished = False
        try:
            async for ref in refs:
                yield await ref
            finished = True
        except RayTaskError as exc:
            if isinstance(exc.cause, WorkspaceError | SandboxError):
                raise exc.cause from None
            raise
        except (RayActorError, ActorUnavailableError) as exc:
            self._handles.pop(self._owner(workspace_id), None)
            raise WorkspaceUnavailable(
                "The workspace's host stopped while streaming; retry."
            ) from exc
        finally:
            if not finished:  # The consumer went away (or failed): stop the stream's source.
                ray.cancel(refs)

    async def exec_stream(
        self, workspace_id: str, request: ExecRequest, *, author: Author
    ) -> AsyncIterator[OutputChunk | ExecOutcome]:
        async for event in self._stream(workspace_id, "exec_stream", request, author=author):
            yield event

    async def start_process(
        self,
        workspace_id: str,
        request: StartRequest,
        *,
        author: Author,
        client_token: str | None = None,
    ) -> ProcessInfo:
        # With a client token a retry after the host died returns the same process, if the
        # host (and so the session's token table) survived; otherwise a new one starts once.
        result: ProcessInfo = await self._call(
            self._owner(workspace_id),
            "start_process",
            workspace_id,
            request,
            author=author,
            client_token=client_token,
            retry=False,
        )
        return result

    async def list_processes(self, workspace_id: str) -> list[ProcessInfo]:
        owner = self._owner(workspace_id)
        result: list[ProcessInfo] = await self._call(
            owner, "list_processes", workspace_id, retry=True
        )
        return result

    async def read_logs(self, workspace_id: str, process_id: str, offset: int = 0) -> ProcessLogs:
        owner = self._owner(workspace_id)
        result: ProcessLogs = await self._call(
            owner, "read_logs", workspace_id, process_id, offset, retry=True
        )
        return result

    async def follow_process(
        self, workspace_id: str, process_id: str, offset: int = 0
    ) -> AsyncIterator[bytes]:
        async for data in self._stream(workspace_id, "follow_process", process_id, offset):
            yield data

    async def write_stdin(self, workspace_id: str, process_id: str, data: bytes) -> None:
        owner = self._owner(workspace_id)
        await self._call(owner, "write_stdin", workspace_id, process_id, data, retry=False)

    async def resize_terminal(
        self, workspace_id: str, process_id: str, *, cols: int, rows: int
    ) -> None:
        owner = self._owner(workspace_id)
        await self._call(
            owner, "resize_terminal", workspace_id, process_id, cols=cols, rows=rows, retry=True
        )

    async def kill_process(
        self, workspace_id: str, process_id: str, *, author: Author
    ) -> SyncReport:
        owner = self._owner(workspace_id)
        result: SyncReport = await self._call(
            owner, "kill_process", workspace_id, process_id, author=author, retry=False
        )
        return result

    async def sync(self, workspace_id: str, *, author: Author) -> SyncReport:
        owner = self._owner(workspace_id)
        result: SyncReport = await self._call(
            owner, "sync", workspace_id, author=author, retry=True
        )
        return result

    async def sessions(self) -> list[SessionInfo]:
        """Every open session on every host (hosts that are down are skipped)."""
        results = await asyncio.gather(
            *(self._call(name, "sessions", retry=False) for name in self._hosts),
            return_exceptions=True,
        )
        sessions: list[SessionInfo] = []
        for result in results:
            if isinstance(result, BaseException):
                log.warning("workspace_host.unreachable", error=type(result).__name__)
                continue
            sessions.extend(result)
        return sessions

    async def collab_open(self, workspace_id: str, path: str) -> bytes:
        message: bytes = await self._call(
            self._owner(workspace_id), "collab_open", workspace_id, path, retry=True
        )
        return message

    async def collab_receive(
        self, workspace_id: str, path: str, message: bytes, *, user_id: str, can_write: bool
    ) -> CollabReply:
        """Retried when the host dies: applying a Yjs update twice changes nothing."""
        reply: CollabReply = await self._call(
            self._owner(workspace_id),
            "collab_receive",
            workspace_id,
            path,
            message,
            user_id=user_id,
            can_write=can_write,
            retry=True,
        )
        return reply

    def kill_hosts(self) -> None:
        """Stop every host actor (used when the platform shuts down)."""
        for name in self._hosts:
            try:
                ray.kill(ray.get_actor(name, namespace=self._namespace))
            except ValueError:
                continue
