"""The values the accounts services hand out: users, callers, token pairs, sessions, API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from state.models import User

__all__ = [
    "ApiKeyInfo",
    "CreatedApiKey",
    "LoginResult",
    "Principal",
    "SessionInfo",
    "TokenPair",
    "UserInfo",
]


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: str
    email: str
    name: str
    created_at: datetime
    is_admin: bool
    token_epoch: int
    email_verified: bool = False
    two_factor: bool = False

    @classmethod
    def of(cls, user: User) -> UserInfo:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            created_at=user.created_at,
            is_admin=user.is_admin,
            token_epoch=user.token_epoch,
            email_verified=user.email_verified_at is not None,
            two_factor=user.totp_enabled_at is not None,
        )


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    user: UserInfo


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``scopes`` is None for a user's own access token (every scope)."""

    user: UserInfo
    via: str  # "access_token" | "api_key"
    scopes: frozenset[str] | None = None
    api_key_id: str | None = None
    # The sign-in (refresh-token family) of an access token.
    session_id: str | None = None

    def has_scope(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes or "api" in self.scopes


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One sign-in: a refresh-token family that has not ended."""

    id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip: str | None


@dataclass(frozen=True, slots=True)
class LoginResult:
    pair: TokenPair
    # "password", "totp" or "recovery_code": what the sign-in was proven with.
    second_factor: str | None


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    id: str
    name: str
    key: str
    scopes: list[str]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What may be shown about an API key after creation: never the key."""

    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
