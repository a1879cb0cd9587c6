"""The host side of the supervisor protocol: framed JSON requests multiplexed by id.

Bytes from the supervisor are parsed as they arrive (``feed``) and each frame goes straight to
the request waiting for it: a future for a plain call, a queue for a stream. Frames come from
an untrusted process, so sizes are capped and every malformed frame is a crash of that sandbox.

Two ways in: ``pump`` reads a ``StreamReader`` (a subprocess's stdout, docker's attach stream);
``ChannelProtocol`` is an asyncio protocol for a socket (the exec channel), which saves the
reader task and its wakeup on the hottest path.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import struct
from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol, cast

from sandbox.errors import ProcessNotFound, SandboxCrashed, SandboxProtocolError

__all__ = ["ChannelProtocol", "Frame", "FrameWriter", "SupervisorChannel", "pump"]

Frame = dict[str, Any]
MAX_FRAME_BYTES = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")
_CLOSED: Frame = {"type": "closed"}
_FINAL = ("result", "error", "closed")
_DECODER = json.JSONDecoder()


class FrameWriter(Protocol):
    """What a channel writes requests to (an ``asyncio.StreamWriter`` fits)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...


class SupervisorChannel:
    def __init__(self, sandbox_id: str, writer: FrameWriter) -> None:
        self.sandbox_id = sandbox_id
        self._writer = writer
        self._ids = itertools.count(1)
        self._routes: dict[int, Callable[[Frame], None]] = {}
        self._unanswered: set[int] = set()  # sent, final frame not seen (listened to or not)
        self._when_idle: list[Callable[[], None]] = []
        self._inbox = bytearray()
        self.closed_reason: str | None = None

    @property
    def busy(self) -> bool:
        """A request is still unanswered, even one whose caller stopped listening."""
        return bool(self._unanswered)

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once no request is unanswered (now, if none is)."""
        if self._unanswered:
            self._when_idle.append(callback)
        else:
            callback()

    def _answered(self, request_id: int) -> None:
        self._unanswered.discard(request_id)
        if not self._unanswered:
            callbacks, self._when_idle = self._when_idle, []
            for callback in callbacks:
                callback()

    # --- what the supervisor sends --------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Route every complete frame in ``data`` (plus what was buffered). Never raises."""
        if self.closed_reason is not None:
            return
        inbox = self._inbox
        inbox += data
        try:
            while len(inbox) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(inbox)
                if size > MAX_FRAME_BYTES:
                    raise SandboxProtocolError(self.sandbox_id, f"frame of {size} bytes")
                end = _HEADER.size + size
                if len(inbox) < end:
                    return
                frame = _DECODER.decode(inbox[_HEADER.size : end].decode())
                del inbox[:end]
                if not isinstance(frame, dict):
                    raise SandboxProtocolError(self.sandbox_id, "frame is not an object")
                request_id = frame.get("id", -1)
                route = self._routes.get(request_id)
                if route is not None:
                    route(frame)
                if frame.get("type") in _FINAL and request_id in self._unanswered:
                    self._answered(request_id)
        except (SandboxProtocolError, ValueError) as exc:
            self.close(f"protocol error: {exc}")

    def close(self, reason: str) -> None:
        """No more frames: every waiting request ends with ``SandboxCrashed(reason)``."""
        if self.closed_reason is None:
            self.closed_reason = reason
            self._inbox.clear()
        for route in list(self._routes.values()):
            route(_CLOSED)
        for request_id in list(self._unanswered):
            self._answered(request_id)

    # --- requests -------------------------------------------------------------------------

    async def _send(self, request_id: int, op: str, fields: dict[str, Any]) -> None:
        if self.closed_reason is not None:
            raise SandboxCrashed(self.sandbox_id, self.closed_reason)
        data = json.dumps({"id": request_id, "op": op, **fields}).encode()
        self._unanswered.add(request_id)
        try:
            self._writer.write(_HEADER.pack(len(data)) + data)
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self._answered(request_id)
            raise SandboxCrashed(self.sandbox_id, f"cannot write to supervisor: {exc}") from exc

    def _check(self, frame: Frame, fields: dict[str, Any]) -> Frame:
        kind = frame.get("type")
        if kind == "closed":
            raise SandboxCrashed(self.sandbox_id, self.closed_reason or "closed")
        if kind == "error":
            if frame.get("code") == "process_not_found":
                raise ProcessNotFound(self.sandbox_id, str(fields.get("process_id")))
            raise SandboxProtocolError(self.sandbox_id, str(frame.get("message"))[:500])
        return frame

    async def call(self, op: str, **fields: Any) -> Frame:
        """Send one request and return its result frame (chunk frames are not expected)."""
        request_id = next(self._ids)
        answer: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()

        def route(frame: Frame) -> None:
            if not answer.done() and frame.get("type") in _FINAL:
                answer.set_result(frame)

        self._routes[request_id] = route
        try:
            await self._send(request_id, op, fields)
            return self._check(await answer, fields)
        finally:
            del self._routes[request_id]

    async def stream(self, op: str, **fields: Any) -> AsyncGenerator[Frame, None]:
        """Send one request; yield its chunk frames and finally its result frame."""
        request_id = next(self._ids)
        queue: asyncio.Queue[Frame] = asyncio.Queue()
        self._routes[request_id] = queue.put_nowait
        try:
            await self._send(request_id, op, fields)
            while True:
                frame = self._check(await queue.get(), fields)
                yield frame
                if frame.get("type") == "result":
                    return
        finally:
            del self._routes[request_id]

    async def aclose(self) -> None:
        self.close("channel closed")
        self._writer.close()


async def pump(reader: asyncio.StreamReader, channel: SupervisorChannel) -> None:
    """Feed ``channel`` from ``reader`` until it ends. Never raises."""
    try:
        while data := await reader.read(65536):
            channel.feed(data)
    except OSError as exc:
        channel.close(f"pipe error: {exc}")
    finally:
        channel.close("the supervisor exited")


class ChannelProtocol(asyncio.Protocol):
    """A socket to the supervisor, parsed in ``data_received`` and written as a ``FrameWriter``.

    Data that arrives before ``attach`` is kept for the channel."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._channel: SupervisorChannel | None = None
        self._early = bytearray()
        self._eof = False
        self._can_write = asyncio.Event()
        self._can_write.set()

    def attach(self, channel: SupervisorChannel) -> None:
        self._channel = channel
        if self._early:
            channel.feed(bytes(self._early))
            self._early.clear()
        if self._eof:
            channel.close("the exec channel closed")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports (Ray's actors run on it) are not
        # subclasses of asyncio's.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._channel is None:
            self._early += data
        else:
            self._channel.feed(data)

    def eof_received(self) -> bool:
        self.connection_lost(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._can_write.set()
        if self._channel is not None:
            self._channel.close("the exec channel closed")

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("the exec channel is closed")
        self._transport.write(data)

    async def drain(self) -> None:
        await self._can_write.wait()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
