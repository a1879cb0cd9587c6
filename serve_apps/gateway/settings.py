"""Settings owned by the gateway (the HTTP edge)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["GatewaySettings", "RateLimitSettings"]


class RateLimitSettings(BaseModel):
    """Requests per window, per client address and per user, by route class (see
    ``accounts.policy``). Redis-backed when Redis is configured, in-process otherwise."""

    enabled: bool = True
    window_s: float = 60.0
    per_ip: dict[str, int] = {"auth": 30, "read": 600, "write": 240, "ai": 60}
    per_user: dict[str, int] = {"auth": 30, "read": 1200, "write": 600, "ai": 120}


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
    # JSON bodies nested deeper than this are refused (400) while they stream in.
    max_json_depth: int = 32
    # Take the client address from X-Forwarded-For (only behind a proxy that sets it).
    trust_forwarded_for: bool = False
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
