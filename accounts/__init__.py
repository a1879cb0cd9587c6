"""Accounts: users, credentials, tokens, sessions, revocation, roles and the permission policy."""

from accounts.errors import (
    AccountError,
    ApiKeyInvalid,
    EmailTaken,
    InvalidCredentials,
    InvalidEmail,
    PermissionDenied,
    RefreshTokenInvalid,
    RefreshTokenReused,
    ScopeNotAllowed,
    TokenInvalid,
    WeakPassword,
)
from accounts.settings import AuthSettings

__all__ = [
    "AccountError",
    "ApiKeyInvalid",
    "AuthSettings",
    "EmailTaken",
    "InvalidCredentials",
    "InvalidEmail",
    "PermissionDenied",
    "RefreshTokenInvalid",
    "RefreshTokenReused",
    "ScopeNotAllowed",
    "TokenInvalid",
    "WeakPassword",
]
