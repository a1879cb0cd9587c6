"""An interactive terminal in a workspace's sandbox over a WebSocket.

``/api/workspaces/{id}/terminal?token=<access token>`` (browsers cannot set headers on a
WebSocket). Binary frames carry pty bytes both ways; a text frame
``{"type": "resize", "cols": N, "rows": M}`` resizes. The shell runs as a started process on a
pty; closing the socket kills it and versions what it changed. Refusals close the socket
before accepting it with 4401 (credentials), 4403 (read-only) or 4404 (not a member); an open
terminal is closed the same way within seconds once its credential is revoked, its user removed
from the workspace or made read-only (``live_auth.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import APIRouter, Query, WebSocket
from starlette.websockets import WebSocketDisconnect

from accounts.errors import AccountError, PermissionDenied
from actors.workspace.api import Author, WorkspaceError, WorkspaceNotFound
from actors.workspace.catalog import can_write
from sandbox import SandboxError, StartRequest
from serve_apps.gateway.live_auth import LiveAuth, Refusal
from serve_apps.gateway.routes.access import require_scope
from serve_apps.gateway.services import Services

__all__ = ["router"]

router = APIRouter()

SHELL = ("/bin/bash", "-i")


async def _authorize(websocket: WebSocket, workspace_id: str, token: str) -> Author | None:
    services: Services = websocket.app.state.services
    try:
        principal = await services.accounts.authenticate(token)
        require_scope(principal, write=True)
        record = await services.catalog.get_for(principal.user.id, workspace_id)
        if not can_write(record.role):
            raise PermissionDenied("Your role in this workspace is read-only.")
    except PermissionDenied:
        await websocket.close(code=4403)
        return None
    except AccountError:
        await websocket.close(code=4401)
        return None
    except WorkspaceNotFound:
        await websocket.close(code=4404)
        return None
    return Author(user_id=principal.user.id, kind="user")


@router.websocket("/api/workspaces/{workspace_id}/terminal")
async def terminal(
    websocket: WebSocket,
    workspace_id: str,
    token: str = Query(""),
    cols: int = Query(80, ge=1, le=1000),
    rows: int = Query(24, ge=1, le=1000),
) -> None:
    author = await _authorize(websocket, workspace_id, token)
    if author is None:
        return
    services: Services = websocket.app.state.services
    writer = services.writer
    request = StartRequest(
        argv=SHELL, env={"TERM": "xterm-256color"}, pty=True, cols=cols, rows=rows
    )
    try:
        process = await writer.start_process(workspace_id, request, author=author)
    except (SandboxError, WorkspaceError) as exc:
        await websocket.close(code=1011, reason=str(exc)[:120])
        return
    await websocket.accept()
    process_id = process.process_id

    async def output() -> None:
        async for data in writer.follow_process(workspace_id, process_id):
            await websocket.send_bytes(data)

    async def keystrokes() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes"):
                # Shielded: a write cut short by closing the terminal (its credential revoked)
                # leaves the session in doubt; its host drops it, ending the other terminals.
                await asyncio.shield(writer.write_stdin(workspace_id, process_id, message["bytes"]))
            elif message.get("text"):
                await _control(message["text"])

    async def _control(text: str) -> None:
        try:
            command = json.loads(text)
            if command.get("type") == "resize":
                cols, rows = int(command["cols"]), int(command["rows"])
                await asyncio.shield(
                    writer.resize_terminal(workspace_id, process_id, cols=cols, rows=rows)
                )
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # A malformed control frame is ignored, like a terminal ignores noise.

    auth = LiveAuth(services, token, workspace_id=workspace_id, needs_write=True)
    tasks: list[asyncio.Task[Refusal | None]] = [
        asyncio.create_task(output()),
        asyncio.create_task(keystrokes()),
        asyncio.create_task(auth.watch()),
    ]
    close_code, close_reason = 1000, ""
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            with contextlib.suppress(WebSocketDisconnect, SandboxError, WorkspaceError):
                refusal = task.result()
                if refusal is not None:
                    close_code, close_reason = refusal.code, refusal.reason
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        with contextlib.suppress(SandboxError, WorkspaceError):
            await writer.kill_process(workspace_id, process_id, author=author)
        with contextlib.suppress(RuntimeError):
            await websocket.close(code=close_code, reason=close_reason)
