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


class JsonTooDeep(HTTPException):
    """Raised from ``receive`` when a JSON body nests deeper than the limit (400)."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(400, f"The JSON body nests deeper than {max_depth} levels.")
        self.max_depth = max_depth

    def __reduce__(self) -> tuple[type[JsonTooDeep], tuple[int]]:
        return (type(self), (self.max_depth,))


_JSON_STRUCTURE = re.compile(rb'[\[\]{}"\\]')


class JsonDepthScanner:
    """Tracks the nesting depth of a JSON document fed in chunks, without parsing it.

    Only brackets outside strings count; a parser would hit the limit far later (Python's json
    recurses per level), so deep documents are refused while they stream in.
    """

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.depth = 0
        self.in_string = False
        self.escaped = False

    def feed(self, chunk: bytes) -> None:
        quiet = not self.in_string and not self.escaped
        if quiet and b"[" not in chunk and b"{" not in chunk and b'"' not in chunk:
            self.depth -= chunk.count(b"]") + chunk.count(b"}")
            return
        position = 0
        if self.escaped:
            self.escaped = False
            position = 1
        for match in _JSON_STRUCTURE.finditer(chunk, position):
            char = match.group()
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                    continue
                if char == b"\\":
                    self.escaped = True
                elif char == b'"':
                    self.in_string = False
                continue
            if self.escaped:
                self.escaped = False
                continue
            if char == b'"':
                self.in_string = True
            elif char in (b"[", b"{"):
                self.depth += 1
                if self.depth > self.max_depth:
                    raise JsonTooDeep(self.max_depth)
            elif char in (b"]", b"}"):
                self.depth -= 1


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
        self.max_json_depth = settings.max_json_depth
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
                await self.app(scope, self._limited(receive, limit, scope), send_wrapper)
        except BodyTooLarge:
            await self._too_large(scope, send_wrapper, request_id, limit)
        except JsonTooDeep as exc:
            response = problem(400, "JSON too deep", str(exc.detail), request_id=request_id)
            await response(scope, _empty_receive, send_wrapper)
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

    def _limited(self, receive: Receive, limit: int, scope: Scope) -> Receive:
        received = 0
        scanner = JsonDepthScanner(self.max_json_depth) if _is_json(scope) else None

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                received += len(body)
                if received > limit:
                    raise BodyTooLarge(limit)
                if scanner is not None and body:
                    scanner.feed(body)
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


def _is_json(scope: Scope) -> bool:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"content-type":
            return b"json" in value.lower()
    return False
