"""The supervisor's stdio through a docker attach connection.

The container runs the supervisor as its main process with stdin open and no tty, so the
attach connection carries our requests to its stdin and its stdout and stderr back,
multiplexed in docker's frame format (8-byte header: stream, 3 zero bytes, big-endian size).
``demultiplex`` splits that into two ``StreamReader``s, so the host side looks exactly like a
subprocess's pipes to ``SupervisorChannel``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from dataclasses import dataclass, field

__all__ = ["AttachedStdio", "open_attached", "raw_socket"]

_HEADER = struct.Struct(">BxxxI")
STDOUT, STDERR = 1, 2


@dataclass
class AttachedStdio:
    """Duck-types the ``stdin``/``stdout``/``stderr`` of an ``asyncio.subprocess.Process``."""

    stdin: asyncio.StreamWriter
    stdout: asyncio.StreamReader = field(default_factory=asyncio.StreamReader)
    stderr: asyncio.StreamReader = field(default_factory=asyncio.StreamReader)
    returncode: int | None = None
    connection: asyncio.StreamReader | None = None

    async def demultiplex(self) -> None:
        """Route frames until the connection ends, then end both streams. Never raises."""
        reader = self.connection
        try:
            while reader is not None:
                header = await reader.readexactly(_HEADER.size)
                stream, size = _HEADER.unpack(header)
                data = await reader.readexactly(size)
                (self.stderr if stream == STDERR else self.stdout).feed_data(data)
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            self.stdout.feed_eof()
            self.stderr.feed_eof()

    def close(self) -> None:
        self.stdin.close()


def raw_socket(sdk_socket: object) -> socket.socket:
    """A socket of our own on the SDK's hijacked attach connection.

    The SDK hands back a ``SocketIO`` (or a socket) owned by its HTTP response; we
    duplicate the descriptor so its garbage collection cannot close our end."""
    fileno = getattr(sdk_socket, "fileno", None)
    if fileno is None:
        raise OSError("the docker attach connection has no file descriptor")
    return socket.socket(fileno=os.dup(fileno()))


async def open_attached(sock: socket.socket) -> AttachedStdio:
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    return AttachedStdio(stdin=writer, connection=reader)
