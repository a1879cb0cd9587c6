"""Settings owned by the gateway (the HTTP edge)."""

from __future__ import annotations

from pydantic import BaseModel

__all__ = ["GatewaySettings"]


class GatewaySettings(BaseModel):
    """Replicas, limits and browser-facing policy of the HTTP gateway."""

    num_replicas: int = 1
    max_ongoing_requests: int = 256
    # Bodies larger than this are refused with 413 before they are read into memory.
    max_body_bytes: int = 1024 * 1024
    cors_allow_origins: list[str] = []
    # Sent only when the platform is served behind TLS.
    hsts: bool = False
    access_log: bool = False
