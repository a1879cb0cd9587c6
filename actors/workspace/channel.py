"""A same-node shortcut from gateway replicas to workspace hosts: a Unix socket per host.

A Ray actor call from a Serve replica to a host costs 1-3 ms on a busy 2-core machine (task
submission, two event-loop hand-offs per side, the reply's object), more than the host's own
work for a small file write. When the caller runs on the host's node, the hottest unary calls
(file writes, live-document updates) go over a Unix socket to the same actor methods instead:
one length-prefixed pickle frame each way, many calls in flight on one connection.

Ray stays the control path: it creates, names, restarts and locates hosts, and carries every
other call. A host hands out its socket's path through a Ray call (``channel_address``), so a
restarted host (a new process, a new path) is found again through Ray; a call whose connection
breaks fails with ``ChannelBroken`` and the caller treats it exactly like a host that died under
a Ray call (retry if idempotent, ``WorkspaceUnavailable`` otherwise).

The socket lives in a 0700 directory of the platform's user and is itself 0600, so only
processes of that user reach it (sandboxed code runs as another uid in its own namespaces). It
carries pickles, as Ray's own channels do: it must never be exposed beyond that user.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import stat
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import structlog

__all__ = [
    "CHANNEL_METHODS",
    "ChannelAddress",
    "ChannelBroken",
    "ChannelClient",
    "ChannelServer",
    "HostChannels",
    "channel_directory",
]

log = structlog.get_logger("workspace.channel")

# Unary, quick, and with arguments the host re-validates: what is worth the shortcut.
CHANNEL_METHODS = frozenset(
    {"write_file", "delete_file", "move_file", "collab_open", "collab_receive"}
)
_HEADER = struct.Struct("!I")
MAX_FRAME_BYTES = 1 << 30
_SOCKET_PATH_LIMIT = 100  # sun_path is 108 bytes with its NUL; keep a margin

ChannelAddress = tuple[str, str]  # (node id, socket path)


class ChannelBroken(ConnectionError):
    """The connection to the host failed. ``sent``: the call may have been applied (otherwise
    it certainly was not, and any call may be retried)."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class RemoteError(RuntimeError):
    """An error the host raised that could not travel as itself."""


def channel_directory() -> Path | None:
    """This user's private directory for host sockets, or None if it is not safe to use."""
    directory = Path(tempfile.gettempdir()) / f"vibecode-channels-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        log.warning("workspace_channel.unsafe_directory", directory=str(directory))
        return None
    return directory


def _remove_stale(directory: Path) -> None:
    """Sockets of host processes that died without cleaning up (killed), of any host: the one
    whose name a dead host had may never start on this node again."""
    for entry in directory.glob("*-*.sock"):
        pid = entry.stem.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    if size > MAX_FRAME_BYTES:
        raise ChannelBroken(f"frame of {size} bytes refused")
    return pickle.loads(await reader.readexactly(size))  # noqa: S301 - same-user socket, see above


def _frame(payload: object) -> bytes:
    body = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


Dispatch = Callable[[str, tuple[Any, ...], dict[str, Any]], Awaitable[Any]]


class ChannelServer:
    """Serves ``CHANNEL_METHODS`` of one host on a Unix socket, on the host's event loop."""

    def __init__(self, dispatch: Dispatch) -> None:
        self._dispatch = dispatch
        self._server: asyncio.AbstractServer | None = None
        self._path: Path | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections: set[asyncio.StreamWriter] = set()
        self._starting = asyncio.Lock()

    async def start(self, name: str) -> Path | None:
        """Listen; None when no safe socket path exists (callers then use Ray)."""
        async with self._starting:
            if self._path is None:
                self._path = await self._listen(name)
        return self._path

    async def _listen(self, name: str) -> Path | None:
        directory = channel_directory()
        if directory is None:
            return None
        prefix = name.replace(":", "-").replace("/", "-")
        _remove_stale(directory)
        path = directory / f"{prefix}-{os.getpid()}.sock"
        if len(os.fsencode(path)) > _SOCKET_PATH_LIMIT:
            log.warning("workspace_channel.path_too_long", path=str(path))
            return None
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(path))
        os.chmod(path, 0o600)  # (The 0700 directory already keeps everyone else out.)
        return path

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for connection in list(self._connections):
            connection.close()
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while True:
                try:
                    call_id, method, args, kwargs = await _read_frame(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                task = asyncio.create_task(self._answer(writer, call_id, method, args, kwargs))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        call_id: int,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        try:
            if method not in CHANNEL_METHODS:
                raise RemoteError(f"{method!r} is not served on the channel")
            reply: tuple[int, bool, object] = (
                call_id,
                True,
                await self._dispatch(method, args, kwargs),
            )
        except Exception as exc:  # noqa: BLE001 - every error travels back to the caller
            reply = (call_id, False, exc)
        try:
            data = _frame(reply)
        except Exception as exc:  # noqa: BLE001 - an unpicklable error is sent as text
            data = _frame((call_id, False, RemoteError(f"{type(exc).__name__}: {exc}")))
        if not writer.is_closing():
            # The caller may be gone already (uvloop raises where asyncio drops the data).
            with contextlib.suppress(RuntimeError, OSError):
                writer.write(data)


class ChannelClient:
    """One connection to one host's socket, shared by every call of this process's loop."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._loop = asyncio.get_running_loop()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._connecting = asyncio.Lock()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._reading: asyncio.Task[None] | None = None
        self.broken = False

    def usable_here(self) -> bool:
        """False once broken, or from another event loop than the one it was made on."""
        return not self.broken and asyncio.get_running_loop() is self._loop

    async def call(self, method: str, args: Iterable[Any], kwargs: dict[str, Any]) -> Any:
        writer = await self._connected()
        self._next_id += 1
        call_id = self._next_id
        frame = _frame((call_id, method, tuple(args), kwargs))
        if self.broken:  # The reader ended between connecting and now.
            raise ChannelBroken(f"channel {self.path} is closed", sent=False)
        try:
            if writer.is_closing():
                raise ConnectionResetError("the transport is closed")
            writer.write(frame)
        except (RuntimeError, OSError) as exc:
            # The transport closed before the reader saw it (the host died and reset the
            # connection): uvloop raises on write where asyncio would drop the data.
            self._fail(ChannelBroken(f"channel {self.path} broke: {exc!r}"))
            raise ChannelBroken(f"channel {self.path} is closed", sent=False) from exc
        # Registered only once written, with no await in between: the answer cannot come first.
        answer: asyncio.Future[Any] = self._loop.create_future()
        self._pending[call_id] = answer
        try:
            ok, value = await answer
        finally:
            self._pending.pop(call_id, None)
        if ok:
            return value
        raise value

    async def _connected(self) -> asyncio.StreamWriter:
        if self._writer is not None and not self.broken:
            return self._writer
        async with self._connecting:
            if self.broken:
                raise ChannelBroken(f"channel {self.path} is closed", sent=False)
            if self._writer is None:
                try:
                    self._reader, self._writer = await asyncio.open_unix_connection(self.path)
                except OSError as exc:
                    self.broken = True
                    raise ChannelBroken(
                        f"cannot connect to {self.path}: {exc}", sent=False
                    ) from exc
                self._reading = asyncio.create_task(self._read_forever(self._reader))
        return self._writer

    async def _read_forever(self, reader: asyncio.StreamReader) -> None:
        error: BaseException = ChannelBroken(f"channel {self.path} closed by the host")
        try:
            while True:
                call_id, ok, value = await _read_frame(reader)
                answer = self._pending.get(call_id)
                if answer is not None and not answer.done():
                    answer.set_result((ok, value))
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            error = ChannelBroken(f"channel {self.path} broke: {exc!r}")
        except asyncio.CancelledError:
            error = ChannelBroken(f"channel {self.path} was closed")
            raise
        except Exception as exc:  # noqa: BLE001 - a frame we cannot read ends the channel
            error = ChannelBroken(f"channel {self.path}: unreadable frame: {exc!r}")
        finally:
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        self.broken = True
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(error)
        self._pending.clear()
        if self._writer is not None:
            self._writer.close()

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        self._fail(ChannelBroken(f"channel {self.path} was closed"))


class HostChannels:
    """Which hosts this process reaches over their socket, found through ``lookup``.

    ``lookup(name)`` asks the host (through Ray) for its socket and returns the path when the
    host runs on the caller's node, else None; a host without a usable channel is asked again
    after ``recheck_s`` (it may have restarted here), and meanwhile reached through Ray. A
    lookup that fails (the host is restarting) is tried again on the next call."""

    def __init__(
        self, lookup: Callable[[str], Awaitable[str | None]], *, recheck_s: float = 30.0
    ) -> None:
        self._lookup = lookup
        self._recheck_s = recheck_s
        # host -> its channel, or the time after which to ask again.
        self._known: dict[str, ChannelClient | float] = {}

    def path(self, name: str) -> str | None:
        """The socket host ``name`` is reached through now, if any."""
        known = self._known.get(name)
        return known.path if isinstance(known, ChannelClient) and not known.broken else None

    async def get(self, name: str) -> ChannelClient | None:
        known = self._known.get(name)
        if isinstance(known, ChannelClient):
            if known.usable_here():
                return known
            if known.broken:
                self._known.pop(name, None)
            return None
        if known is not None and time.monotonic() < known:
            return None
        self._avoid(name)  # One lookup at a time; the others go through Ray meanwhile.
        try:
            path = await self._lookup(name)
        except Exception:  # noqa: BLE001 - e.g. the host is restarting: ask on the next call
            self._known.pop(name, None)
            return None
        if path is None:
            return None
        channel = ChannelClient(path)
        self._known[name] = channel
        return channel

    def broke(self, name: str, error: ChannelBroken) -> None:
        """After ``error``: ask a host that went away again next time; avoid an unreachable
        socket (nothing was sent) for a while."""
        if error.sent:
            self._known.pop(name, None)
        else:
            self._avoid(name)

    def _avoid(self, name: str) -> None:
        self._known[name] = time.monotonic() + self._recheck_s
