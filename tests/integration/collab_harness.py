"""Live collaboration through the real transports: the gateway under uvicorn on loopback (in a
thread, or as a separate process), and Python Yjs clients speaking the y-websocket protocol."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import socketio
import uvicorn
import websockets
from fastapi import FastAPI

from collab.document import TextDocument
from collab.protocol import (
    ACK,
    AUTH,
    AWARENESS,
    SYNC,
    SyncType,
    decode_message,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
    read_var_uint,
)
from tests.harness.ray_cluster import free_port


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1; yield ``http://127.0.0.1:<port>``."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@dataclass
class Account:
    token: str
    user_id: str


def register(base_url: str, email: str, password: str = "correct horse battery") -> Account:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        created = http.post("/api/auth/register", json={"email": email, "password": password})
        assert created.status_code == 201, created.text
        login = http.post("/api/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        me = http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        user_id = me.json()["id"] if me.status_code == 200 else ""
    return Account(token=token, user_id=user_id)


def create_workspace(base_url: str, token: str, name: str = "live") -> str:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        response = http.post(
            "/api/workspaces",
            json={"name": name},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.text
        workspace_id: str = response.json()["id"]
    return workspace_id


def read_file(base_url: str, token: str, workspace_id: str, path: str) -> bytes | None:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        response = http.get(
            f"/api/workspaces/{workspace_id}/files/{path}",
            headers={"Authorization": f"Bearer {token}"},
        )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.content


async def wait_for_file(
    base_url: str, token: str, workspace_id: str, path: str, expected: str, timeout_s: float = 10
) -> bytes | None:
    deadline = time.monotonic() + timeout_s
    data = None
    while time.monotonic() < deadline:
        data = await asyncio.to_thread(read_file, base_url, token, workspace_id, path)
        if data == expected.encode() or (data is None and not expected):
            return data
        await asyncio.sleep(0.1)
    return data


class YClient:
    """A y-websocket-protocol client over pycrdt. Edits count as acknowledged once the server's
    ACK (``?ack=1``) says they are durable; reconnecting resyncs from the state vector."""

    def __init__(
        self,
        base_url: str,
        workspace_id: str,
        path: str,
        token: str,
        *,
        compression: str | None = "deflate",
    ) -> None:
        """``compression``: the WebSocket extension to offer (browsers offer ``deflate``)."""
        self.doc = TextDocument()
        self._compression = compression
        self.url = self._url(base_url, workspace_id, path, token)
        self._workspace_id, self._path, self._token = workspace_id, path, token
        self.sent = 0
        self.acked = 0
        self.denied = 0
        self.closed_code: int | None = None
        self.awareness: list[bytes] = []
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()
        self._changed = asyncio.Event()
        self.received_at: list[float] = []

    @staticmethod
    def _url(base_url: str, workspace_id: str, path: str, token: str) -> str:
        ws_base = base_url.replace("http://", "ws://", 1)
        return f"{ws_base}/collab/{workspace_id}/{quote(path)}?token={token}&ack=1"

    def retarget(self, base_url: str) -> None:
        self.url = self._url(base_url, self._workspace_id, self._path, self._token)

    @property
    def text(self) -> str:
        return self.doc.text

    async def connect(self) -> None:
        self._synced.clear()
        self.closed_code = None
        self._ws = await websockets.connect(
            self.url, max_size=None, open_timeout=20, compression=self._compression
        )
        self._reader = asyncio.create_task(self._read())
        # Anything we sent that was not acknowledged is re-sent when the server's step 1 arrives.
        self.sent = self.acked
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._ws.send(encode_sync_step1(self.doc.state_vector()))

    async def wait_synced(self, timeout_s: float = 20) -> None:
        await asyncio.wait_for(self._synced.wait(), timeout_s)

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                await self._handle(bytes(raw))
        except websockets.ConnectionClosed:
            pass
        finally:
            if self._ws is not None and self._ws.close_code is not None:
                self.closed_code = self._ws.close_code

    async def _handle(self, raw: bytes) -> None:
        message = decode_message(raw)
        if message.kind == SYNC:
            if message.sync_type == SyncType.STEP1:
                missing = self.doc.encode_state(message.payload)
                self.sent += 1
                with contextlib.suppress(websockets.ConnectionClosed):
                    await self._ws.send(encode_sync_step2(missing))
            else:
                if self.doc.apply_update(message.payload) is not None:
                    self.received_at.append(time.perf_counter())
                    self._changed.set()
                if message.sync_type == SyncType.STEP2:
                    self._synced.set()
        elif message.kind == ACK:
            count, _ = read_var_uint(message.payload, 0)
            self.acked += count
        elif message.kind == AUTH:
            self.denied += 1
        elif message.kind == AWARENESS:
            self.awareness.append(message.payload)

    async def _send_update(self, update: bytes | None) -> None:
        if update is None:
            return
        self.sent += 1
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._ws.send(encode_update(update))

    async def insert(self, index: int, value: str) -> None:
        await self._send_update(self.doc.insert(index, value))

    async def delete(self, index: int, length: int) -> None:
        await self._send_update(self.doc.delete(index, length))

    async def send_raw(self, message: bytes) -> None:
        await self._ws.send(message)

    async def wait_acked(self, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while self.acked < self.sent:
            if time.monotonic() > deadline:
                raise TimeoutError(f"acked {self.acked} of {self.sent}")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.wait([self._reader])

    async def wait_closed(self, timeout_s: float = 10) -> int | None:
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout_s)
        return self.closed_code


async def wait_converged(clients: list[YClient], timeout_s: float = 20) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        texts = {c.text for c in clients}
        if len(texts) == 1:
            return texts.pop()
        if time.monotonic() > deadline:
            raise AssertionError(f"did not converge: {[c.text for c in clients]}")
        await asyncio.sleep(0.02)


class Listener:
    """A Socket.IO client that records every event it receives."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.client.on("*", self._record)

    async def _record(self, event: str, data: Any) -> None:
        self.events.append((event, data))

    async def wait_for(self, event: str, predicate: Any = None, timeout_s: float = 15) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, data in self.events:
                if name == event and (predicate is None or predicate(data)):
                    return data
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {event!r} event; got {[name for name, _ in self.events]}")
