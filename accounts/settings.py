"""Settings owned by the accounts library."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

__all__ = [
    "AuthSettings",
    "MailSettings",
    "OAuthProviderSettings",
    "OAuthSettings",
    "SecretsSettings",
]


class MailSettings(BaseModel):
    """Outgoing mail (verification, password reset, invitations). No host: mail is only logged."""

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    # "starttls" upgrades a plain connection; "tls" connects with TLS; "none" is for loopback.
    smtp_security: str = "starttls"
    from_address: str = "Vibecode <no-reply@localhost>"
    timeout_s: float = 10.0


class OAuthProviderSettings(BaseModel):
    """One OAuth provider. Endpoints default to the real provider; tests point them at loopback."""

    client_id: str | None = None
    client_secret: SecretStr | None = None
    authorize_url: str
    token_url: str
    # GitHub: the REST API base (``/user``, ``/user/emails``). Google: the OIDC userinfo URL.
    userinfo_url: str
    emails_url: str | None = None
    # OIDC (Google): the issuer whose discovery document names the JWKS that signs id_tokens.
    issuer: str | None = None
    scope: str = "openid email profile"
    timeout_s: float = 10.0

    @property
    def configured(self) -> bool:
        return self.client_id is not None and self.client_secret is not None


def _github() -> OAuthProviderSettings:
    return OAuthProviderSettings(
        authorize_url="https://github.com/login/oauth/authorize",
        token_url="https://github.com/login/oauth/access_token",  # noqa: S106
        userinfo_url="https://api.github.com/user",
        emails_url="https://api.github.com/user/emails",
        scope="read:user user:email",
    )


def _google() -> OAuthProviderSettings:
    return OAuthProviderSettings(
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url="https://oauth2.googleapis.com/token",  # noqa: S106
        userinfo_url="https://openidconnect.googleapis.com/v1/userinfo",
        issuer="https://accounts.google.com",
    )


class OAuthSettings(BaseModel):
    github: OAuthProviderSettings = Field(default_factory=_github)
    google: OAuthProviderSettings = Field(default_factory=_google)
    # How long an authorization request (state + PKCE verifier) stays redeemable.
    state_ttl_s: float = 600.0
    # Redirect URIs a client may ask for (exact match); empty: any http(s) URI of public_url.
    allowed_redirect_uris: list[str] = []


class SecretsSettings(BaseModel):
    """Keys that seal secrets at rest: ``id:base64(32 bytes)``, newest first.

    The first key seals; all of them open. Empty in development: a key is derived from the JWT
    secret. ``VIBECODE_SECRETS__KEYS='["k2:...", "k1:..."]'``.
    """

    keys: list[SecretStr] = []


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
    # Where links in emails point (the web UI), e.g. https://vibecode.example.com.
    public_url: str = "http://127.0.0.1:8000"
    email_verification_ttl_s: int = 3 * 24 * 3600
    password_reset_ttl_s: int = 3600
    invitation_ttl_s: int = 7 * 24 * 3600
    totp_issuer: str = "Vibecode"
    recovery_code_count: int = 10
    mail: MailSettings = Field(default_factory=MailSettings)
    oauth: OAuthSettings = Field(default_factory=OAuthSettings)
