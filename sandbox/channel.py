"""The host side of the supervisor protocol: framed JSON requests multiplexed by id.

One reader task per sandbox routes frames to per-request queues. Frames come from an
untrusted process, so sizes are capped and every malformed frame is a crash of that sandbox.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import struct
from collections.abc import AsyncGenerator
from typing import Any

from sandbox.errors import ProcessNotFound, SandboxCrashed, SandboxProtocolError

__all__ = ["Frame", "SupervisorChannel"]

Frame = dict[str, Any]
MAX_FRAME_BYTES = 64 * 1024 * 1024
_HEADER = struct.Struct(">I")
_CLOSED: Frame = {"type": "closed"}


class SupervisorChannel:
    def __init__(
        self, sandbox_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.sandbox_id = sandbox_id
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._queues: dict[int, asyncio.Queue[Frame]] = {}
        self.closed_reason: str | None = None

    async def run(self) -> None:
        """Route frames until the supervisor's stdout ends. Never raises."""
        try:
            while True:
                header = await self._reader.readexactly(_HEADER.size)
                (size,) = _HEADER.unpack(header)
                if size > MAX_FRAME_BYTES:
                    raise SandboxProtocolError(self.sandbox_id, f"frame of {size} bytes")
                frame = json.loads(await self._reader.readexactly(size))
                if not isinstance(frame, dict):
                    raise SandboxProtocolError(self.sandbox_id, "frame is not an object")
                queue = self._queues.get(frame.get("id", -1))
                if queue is not None:
                    queue.put_nowait(frame)
        except asyncio.IncompleteReadError:
            self._close("the supervisor exited")
        except (SandboxProtocolError, ValueError) as exc:
            self._close(f"protocol error: {exc}")
        except OSError as exc:
            self._close(f"pipe error: {exc}")
        finally:
            self._close("channel closed")

    def _close(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
        for queue in self._queues.values():
            queue.put_nowait(_CLOSED)

    async def _send(self, request_id: int, op: str, fields: dict[str, Any]) -> None:
        if self.closed_reason is not None:
            raise SandboxCrashed(self.sandbox_id, self.closed_reason)
        data = json.dumps({"id": request_id, "op": op, **fields}).encode()
        self._writer.write(_HEADER.pack(len(data)) + data)
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
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
        """Send one request and return its result frame."""
        async for frame in self.stream(op, **fields):
            if frame.get("type") == "result":
                return frame
        raise SandboxProtocolError(self.sandbox_id, f"{op}: no result")

    async def stream(self, op: str, **fields: Any) -> AsyncGenerator[Frame, None]:
        """Send one request; yield its chunk frames and finally its result frame."""
        request_id = next(self._ids)
        queue: asyncio.Queue[Frame] = asyncio.Queue()
        self._queues[request_id] = queue
        try:
            await self._send(request_id, op, fields)
            while True:
                frame = self._check(await queue.get(), fields)
                yield frame
                if frame.get("type") == "result":
                    return
        finally:
            del self._queues[request_id]

    async def aclose(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            return
