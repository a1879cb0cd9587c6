"""Access tokens (signed JWTs) and opaque secrets (refresh tokens, API keys)."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import jwt

from accounts.errors import TokenInvalid
from accounts.settings import AuthSettings

__all__ = [
    "API_KEY_PREFIX",
    "REFRESH_TOKEN_PREFIX",
    "AccessClaims",
    "AccessTokenCodec",
    "hash_secret",
    "new_secret",
]

ALGORITHM = "HS256"
API_KEY_PREFIX = "vck_"
REFRESH_TOKEN_PREFIX = "vcr_"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    token_epoch: int
    expires_at: int
    token_id: str
    # The sign-in (refresh-token family) the token belongs to; None for older tokens.
    session_id: str | None = None


class AccessTokenCodec:
    """Issues and verifies short-lived access tokens.

    Verification pins the algorithm, issuer and audience and requires every claim it relies on,
    so ``alg: none``, tokens signed with another key and tokens of another deployment all fail.
    """

    def __init__(self, settings: AuthSettings) -> None:
        if settings.jwt_secret is None:
            raise ValueError("AuthSettings.jwt_secret must be resolved before use")
        self._key = settings.jwt_secret.get_secret_value()
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self.ttl_s = settings.access_token_ttl_s

    def issue(
        self,
        *,
        user_id: str,
        token_epoch: int,
        session_id: str | None = None,
        now: float | None = None,
    ) -> str:
        issued_at = int(now if now is not None else time.time())
        claims: dict[str, object] = {
            "sub": user_id,
            "iss": self._issuer,
            "aud": self._audience,
            "iat": issued_at,
            "exp": issued_at + self.ttl_s,
            "jti": secrets.token_hex(8),
            "typ": "access",
            "ep": token_epoch,
        }
        if session_id is not None:
            claims["sid"] = session_id
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        """Return the claims of a valid token; raise TokenInvalid otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenInvalid("The access token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise TokenInvalid() from exc
        if claims.get("typ") != "access" or not isinstance(claims.get("ep"), int):
            raise TokenInvalid()
        return AccessClaims(
            user_id=str(claims["sub"]),
            token_epoch=int(claims["ep"]),
            expires_at=int(claims["exp"]),
            token_id=str(claims["jti"]),
            session_id=str(claims["sid"]) if isinstance(claims.get("sid"), str) else None,
        )


def new_secret(prefix: str) -> str:
    """A high-entropy opaque credential (256 bits) with a recognisable prefix."""
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """Hash of a high-entropy secret for storage and lookup (no salt needed at 256 bits)."""
    return hashlib.sha256(secret.encode()).hexdigest()
