"""One pure-ASGI middleware for what every request needs.

Request id (``x-request-id``: accepted when well-formed, generated otherwise, echoed back and
bound into every log line), body size limit (413 before the body is buffered), security
headers, Prometheus metrics by route template and an optional access log. Written as raw ASGI
rather than ``BaseHTTPMiddleware`` because it sits on the hot path of every request.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_apps.gateway.metrics import HttpMetrics
from serve_apps.gateway.problems import problem
from serve_apps.gateway.settings import GatewaySettings

__all__ = ["EdgeMiddleware"]

log = structlog.get_logger("gateway.http")

REQUEST_ID_HEADER = b"x-request-id"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED_ROUTE = "<unmatched>"

API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
# Swagger UI at /docs loads its assets from a CDN and runs an inline bootstrap script.
DOCS_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: "
    b"https://fastapi.tiangolo.com; connect-src 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})

# (method, full-match pattern of the decoded path): requests whose body is an upload (raw file,
# zip archive) rather than JSON, allowed up to ``max_upload_bytes``.
UploadRoute = tuple[str, re.Pattern[str]]


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once the streamed body passes the limit.

    An HTTPException so that FastAPI's body parsing re-raises it unchanged and the problem
    handler answers 413 (a plain exception would be reported as a parse error).
    """

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(413, f"The request body exceeds the limit of {limit_bytes} bytes.")
        self.limit_bytes = limit_bytes

    def __reduce__(self) -> tuple[type[BodyTooLarge], tuple[int]]:
        return (type(self), (self.limit_bytes,))


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: GatewaySettings,
        metrics: HttpMetrics,
        echo_request_id: bool = True,
        upload_routes: Sequence[UploadRoute] = (),
        max_upload_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.echo_request_id = echo_request_id
        self.max_body_bytes = settings.max_body_bytes
        self.upload_routes = tuple(upload_routes)
        self.max_upload_bytes = max_upload_bytes
        self.metrics = metrics
        self.access_log = settings.access_log
        self.static_headers: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if settings.hsts:
            self.static_headers.append(
                (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status_holder = [500]
        csp = DOCS_CSP if scope["path"] in DOCS_PATHS else API_CSP
        extra_headers = [(b"content-security-policy", csp), *self.static_headers]
        if self.echo_request_id:
            extra_headers.append((REQUEST_ID_HEADER, request_id.encode()))

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.extend(extra_headers)
                message = {**message, "headers": headers}
            await send(message)

        limit = self._body_limit(scope)
        try:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                await self._too_large(scope, send_wrapper, request_id, limit)
            else:
                await self.app(scope, self._limited(receive, limit), send_wrapper)
        except BodyTooLarge:
            await self._too_large(scope, send_wrapper, request_id, limit)
        finally:
            duration_s = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            status = status_holder[0]
            self.metrics.observe(
                method=scope["method"], route=template, status=status, duration_s=duration_s
            )
            if self.access_log or status >= 500:
                log.info(
                    "http.request",
                    method=scope["method"],
                    route=template,
                    status=status,
                    duration_ms=round(duration_s * 1000, 2),
                )
            structlog.contextvars.clear_contextvars()

    def _body_limit(self, scope: Scope) -> int:
        if self.max_upload_bytes is not None:
            method, path = scope["method"], scope["path"]
            for upload_method, pattern in self.upload_routes:
                if method == upload_method and pattern.fullmatch(path):
                    return self.max_upload_bytes
        return self.max_body_bytes

    def _limited(self, receive: Receive, limit: int) -> Receive:
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited_receive

    async def _too_large(self, scope: Scope, send: Send, request_id: str, limit: int) -> None:
        response = problem(
            413,
            "Request body too large",
            f"The request body exceeds the limit of {limit} bytes.",
            request_id=request_id,
        )
        await response(scope, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


def _request_id_of(scope: Scope) -> str:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            candidate = value.decode("latin-1")
            if REQUEST_ID_PATTERN.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def _content_length(scope: Scope) -> int | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
