"""Errors of the accounts library. Domain data only; the gateway maps them to HTTP once."""

from __future__ import annotations

__all__ = [
    "AccountError",
    "ApiKeyInvalid",
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


class AccountError(Exception):
    """Root of every accounts error."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidCredentials(AccountError):
    """Wrong email or password. Deliberately does not say which."""

    def __init__(self, detail: str = "Email or password is incorrect.") -> None:
        super().__init__(detail)


class TokenInvalid(AccountError):
    """An access token that is malformed, tampered, expired, revoked or of an unknown user."""

    def __init__(self, detail: str = "The access token is invalid or expired.") -> None:
        super().__init__(detail)


class ApiKeyInvalid(TokenInvalid):
    def __init__(self, detail: str = "The API key is invalid or revoked.") -> None:
        super().__init__(detail)


class RefreshTokenInvalid(AccountError):
    def __init__(self, detail: str = "The refresh token is invalid or expired.") -> None:
        super().__init__(detail)


class RefreshTokenReused(RefreshTokenInvalid):
    """A refresh token presented after it was rotated: the whole family is revoked."""

    def __init__(
        self,
        detail: str = "The refresh token was already used; every session of that sign-in ended.",
    ) -> None:
        super().__init__(detail)


class EmailTaken(AccountError):
    def __init__(self, detail: str = "An account with this email already exists.") -> None:
        super().__init__(detail)


class InvalidEmail(AccountError):
    pass


class WeakPassword(AccountError):
    pass


class PermissionDenied(AccountError):
    """The caller is authenticated but lacks a scope or role."""


class ScopeNotAllowed(PermissionDenied):
    """Requested API key scopes that are unknown or exceed the caller's own."""

    def __init__(self, scopes: list[str]) -> None:
        super().__init__(f"Scopes not allowed: {', '.join(scopes)}.")
        self.scopes = scopes

    def __reduce__(self) -> tuple[type[ScopeNotAllowed], tuple[list[str]]]:
        return (type(self), (self.scopes,))
