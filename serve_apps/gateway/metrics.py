"""Prometheus metrics of the HTTP edge, labelled by route template (bounded cardinality)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "HttpMetrics"]

LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class HttpMetrics:
    """Request count and latency per (method, route template, status)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "vibecode_http_requests_total",
            "HTTP requests handled by the gateway.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "vibecode_http_request_duration_seconds",
            "Time from receiving a request to sending its last byte.",
            ("method", "route", "status"),
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )

    def observe(self, *, method: str, route: str, status: int, duration_s: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(duration_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
