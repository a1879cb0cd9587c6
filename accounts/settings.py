"""Settings owned by the accounts library."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr

__all__ = ["AuthSettings"]


class AuthSettings(BaseModel):
    """Token lifetimes, signing key and password hashing cost."""

    # None: in development a key is generated once and kept under the data directory.
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "vibecode"
    jwt_audience: str = "vibecode-api"
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    # argon2id parameters (OWASP's second recommended set: m=19 MiB, t=2, p=1).
    argon2_time_cost: int = 2
    argon2_memory_cost_kib: int = 19_456
    argon2_parallelism: int = 1
    min_password_length: int = 8
    # How long a verified user record may be reused for token checks without a database read.
    user_cache_ttl_s: float = 5.0
