"""Long-lived connections lose their access when their credential (or membership) does.

A WebSocket, a Socket.IO connection or a server-sent-events stream is authenticated once, when
it opens; revoking the credential (sign-out everywhere, ended session, password change, API-key
revocation, deleted account) or removing the member would otherwise leave it working. A
``LiveAuth`` re-checks what the connection was let in with every ``RECHECK_INTERVAL_S``:
``authenticate`` (cached per replica, one key-value read for the revocation generation) and,
for a workspace connection, the caller's role through the role cache (``role_cache.py``). No
check runs per message. The caller closes the connection with the returned ``Refusal``:
WebSocket close code 4401 (credentials) or 4403 (membership or role), or ends the stream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from starlette.requests import Request

from accounts.errors import AccountError
from actors.workspace.api import WorkspaceNotFound
from actors.workspace.catalog import can_write
from serve_apps.gateway.services import Services

__all__ = ["RECHECK_INTERVAL_S", "LiveAuth", "Refusal", "guard_stream", "sse_refusal"]

log = structlog.get_logger("gateway.live_auth")

RECHECK_INTERVAL_S = 2.0


@dataclass(frozen=True, slots=True)
class Refusal:
    code: int
    reason: str


REVOKED = Refusal(4401, "credentials revoked")
REMOVED = Refusal(4403, "removed from workspace")
READ_ONLY = Refusal(4403, "role is read-only")


class LiveAuth:
    """What one connection was let in with, to check again while it stays open."""

    def __init__(
        self,
        services: Services,
        credential: str,
        *,
        workspace_id: str | None = None,
        needs_write: bool = False,
        interval_s: float = RECHECK_INTERVAL_S,
    ) -> None:
        self._services = services
        self._credential = credential
        self._workspace_id = workspace_id
        self._needs_write = needs_write
        self.interval_s = interval_s

    @classmethod
    def of_request(
        cls,
        services: Services,
        request: Request,
        *,
        workspace_id: str | None = None,
        needs_write: bool = False,
    ) -> LiveAuth:
        """For a streamed response to an authenticated request (``Authorization: Bearer``)."""
        _scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        return cls(services, credential.strip(), workspace_id=workspace_id, needs_write=needs_write)

    async def still_allowed(self) -> Refusal | None:
        """None while the connection may stay; why it may not otherwise."""
        try:
            principal = await self._services.accounts.authenticate(self._credential)
        except AccountError:
            return REVOKED
        if self._workspace_id is None:
            return None
        try:
            role = await self._services.roles.role_of(principal.user.id, self._workspace_id)
        except WorkspaceNotFound:
            return REMOVED
        if self._needs_write and not can_write(role):
            return READ_ONLY
        return None

    async def watch(self) -> Refusal:
        """Return once the connection is no longer allowed (run it as a task beside it)."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                refusal = await self.still_allowed()
            except Exception as exc:  # noqa: BLE001 - whatever failed, it is not a refusal
                # A failing check (the database or key-value store briefly away) is not a
                # refusal: the connection stays, and the next check decides. One line, not a
                # traceback: during an outage every open connection logs this every interval.
                log.warning("live_auth.check_failed", error=repr(exc))
                continue
            if refusal is not None:
                return refusal


async def guard_stream(stream: AsyncIterator[bytes], auth: LiveAuth) -> AsyncIterator[bytes]:
    """A server-sent-events ``stream``, ended with an ``error`` event once ``auth`` no longer
    holds (``{title, detail}``, as the exec stream's own errors)."""
    watchdog = asyncio.create_task(auth.watch())
    step: asyncio.Future[bytes] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(stream))
            await asyncio.wait([step, watchdog], return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                yield sse_refusal(watchdog.result())
                return
            try:
                chunk = step.result()
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        # The stream's pending step is stopped before the stream is closed (it cannot close
        # while running), and so is the watchdog.
        pending = [task for task in (step, watchdog) if task is not None and not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def sse_refusal(refusal: Refusal) -> bytes:
    title = "Unauthorized" if refusal.code == REVOKED.code else "Forbidden"
    data = json.dumps({"title": title, "detail": refusal.reason})
    return f"event: error\ndata: {data}\n\n".encode()
