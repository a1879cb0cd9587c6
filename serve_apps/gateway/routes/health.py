"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from serve_apps.gateway.deps import ServicesDep
from serve_apps.gateway.metrics import CONTENT_TYPE_LATEST, HttpMetrics

__all__ = ["router"]

router = APIRouter(tags=["health"])

READINESS_TIMEOUT_S = 3.0


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: every dependency answers",
    responses={503: {"description": "Some parts are not ready; they are named in `failing`."}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, Awaitable[None]] = {
        "database": services.db.ping(),
        "blob_store": services.blobs.ping(),
    }
    if services.redis_configured:
        checks["redis"] = services.kv.ping()
    for name, probe in services.probes.items():
        checks[name] = probe()
    results = await asyncio.gather(
        *(asyncio.wait_for(check, READINESS_TIMEOUT_S) for check in checks.values()),
        return_exceptions=True,
    )
    parts: dict[str, str] = {}
    for name, result in zip(checks, results, strict=True):
        if isinstance(result, BaseException):
            reason = "timed out" if isinstance(result, TimeoutError) else str(result)[:200]
            parts[name] = f"failing: {reason or type(result).__name__}"
        else:
            parts[name] = "ok"
    failing = sorted(name for name, state in parts.items() if state != "ok")
    body = {"status": "ok" if not failing else "unavailable", "parts": parts, "failing": failing}
    return JSONResponse(body, status_code=200 if not failing else 503)


@router.get("/metrics", summary="Prometheus metrics of this replica", include_in_schema=True)
async def metrics(request: Request) -> Response:
    http_metrics: HttpMetrics = request.app.state.metrics
    return Response(http_metrics.render(), media_type=CONTENT_TYPE_LATEST)
