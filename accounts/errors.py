"""Errors of the accounts library. Domain data only; the gateway maps them to HTTP once."""

from __future__ import annotations

__all__ = [
    "AccountError",
    "ApiKeyInvalid",
    "EmailTaken",
    "EmailTokenInvalid",
    "InvalidCredentials",
    "InvalidEmail",
    "InvalidSecretName",
    "InvitationInvalid",
    "OAuthFailed",
    "OAuthUnavailable",
    "OrgMemberNotFound",
    "OrgNotFound",
    "PermissionDenied",
    "RateLimited",
    "RefreshTokenInvalid",
    "RefreshTokenReused",
    "ScopeNotAllowed",
    "SecretNotFound",
    "SecretUndecryptable",
    "SessionNotFound",
    "TokenInvalid",
    "TotpInvalid",
    "TotpRequired",
    "TwoFactorStateError",
    "WeakPassword",
]


class AccountError(Exception):
    """Root of every accounts error. ``code`` is a stable machine-readable name, when useful."""

    code: str | None = None

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


class TotpRequired(InvalidCredentials):
    """The password was right and the account has two-factor on: send ``totp_code``."""

    code = "totp_required"

    def __init__(
        self, detail: str = "This account uses two-factor authentication: send totp_code."
    ) -> None:
        super().__init__(detail)


class TotpInvalid(InvalidCredentials):
    code = "totp_invalid"

    def __init__(self, detail: str = "The two-factor code is wrong or was already used.") -> None:
        super().__init__(detail)


class TwoFactorStateError(AccountError):
    """Enabling two-factor twice, enabling before setup, disabling when off."""

    code = "two_factor_state"


class EmailTokenInvalid(AccountError):
    """An email verification or password-reset token that is wrong, expired or used."""

    code = "email_token_invalid"

    def __init__(self, detail: str = "The link is invalid, expired or already used.") -> None:
        super().__init__(detail)


class OAuthUnavailable(AccountError):
    """The provider is not configured on this deployment."""

    code = "oauth_unavailable"


class OAuthFailed(AccountError):
    """State or PKCE mismatch, a refused code, an unverified email: sign-in does not happen."""

    code = "oauth_failed"


class RateLimited(AccountError):
    """Too many attempts; ``retry_after_s`` says when the next one may succeed."""

    code = "rate_limited"

    def __init__(self, retry_after_s: float, detail: str = "Too many requests.") -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[type[RateLimited], tuple[float, str]]:
        return (type(self), (self.retry_after_s, self.detail))


class SessionNotFound(AccountError):
    def __init__(self, detail: str = "No such session.") -> None:
        super().__init__(detail)


class SecretNotFound(AccountError):
    def __init__(self, detail: str = "No such secret.") -> None:
        super().__init__(detail)


class InvalidSecretName(AccountError):
    pass


class SecretUndecryptable(AccountError):
    """A sealed value that no configured key opens (a removed key, tampering, a moved row)."""


class OrgNotFound(AccountError):
    """No such organisation, or the caller is not a member (the same answer on purpose)."""

    def __init__(self, detail: str = "No such organisation.") -> None:
        super().__init__(detail)


class OrgMemberNotFound(OrgNotFound):
    def __init__(self, detail: str = "That user is not a member of this organisation.") -> None:
        super().__init__(detail)


class InvitationInvalid(AccountError):
    code = "invitation_invalid"

    def __init__(self, detail: str = "The invitation is invalid, expired or already used.") -> None:
        super().__init__(detail)
