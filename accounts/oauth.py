"""Sign-in with GitHub and Google: authorization code flow with state and PKCE (S256).

``begin`` stores the state, the PKCE verifier and (OIDC) a nonce server-side in the key-value
store with a TTL; ``complete`` consumes them exactly once (a deleted key cannot be deleted
twice, so a replayed state fails even under concurrency), checks that the provider and the
redirect URI match, exchanges the code with the verifier, and reads the identity:
GitHub through ``/user`` and ``/user/emails``; Google through the id_token, verified against the
provider's JWKS (issuer, audience, expiry, nonce).

Linking uses VERIFIED provider emails only. Linking to an existing account whose own address
was never verified also clears that account's password and sessions: whoever registered the
address without proving it (a pre-hijack) loses access, and the provider-verified owner keeps it.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import jwt
import structlog
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc6749.errors import OAuth2Error
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from accounts.errors import OAuthFailed, OAuthUnavailable
from accounts.revocation import Revocations
from accounts.service import normalize_email
from accounts.settings import OAuthProviderSettings, OAuthSettings
from state.db import Database
from state.kv import KeyValueStore
from state.models import OAuthIdentity, RefreshToken, User, new_id, utcnow

__all__ = ["AuthorizationRequest", "OAuthIdentityInfo", "OAuthService", "Provider"]

log = structlog.get_logger("accounts.oauth")

Provider = Literal["github", "google"]
PROVIDERS: tuple[Provider, ...] = ("github", "google")
STATE_KEY = "oauth:state:"


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    authorization_url: str
    state: str


@dataclass(frozen=True, slots=True)
class OAuthIdentityInfo:
    provider: str
    subject: str
    verified_emails: list[str]
    name: str


@dataclass(frozen=True, slots=True)
class OAuthSignIn:
    user_id: str
    created: bool
    linked: bool


class OAuthService:
    def __init__(
        self,
        db: Database,
        kv: KeyValueStore,
        settings: OAuthSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        revocations: Revocations | None = None,
    ) -> None:
        self._db = db
        self._kv = kv
        self._settings = settings
        self._transport = transport
        # Where a pre-hijacked account's sign-ins are revoked at once (every replica).
        self._revocations = revocations

    def _provider(self, provider: str) -> OAuthProviderSettings:
        if provider not in PROVIDERS:
            raise OAuthUnavailable(f"Unknown OAuth provider {provider[:40]!r}.")
        config: OAuthProviderSettings = getattr(self._settings, provider)
        if not config.configured:
            raise OAuthUnavailable(f"Sign-in with {provider} is not configured here.")
        return config

    def _client(self, config: OAuthProviderSettings, redirect_uri: str) -> AsyncOAuth2Client:
        assert config.client_secret is not None
        return AsyncOAuth2Client(
            client_id=config.client_id,
            client_secret=config.client_secret.get_secret_value(),
            scope=config.scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=config.timeout_s,
            transport=self._transport,
        )

    def _check_redirect(self, redirect_uri: str) -> None:
        allowed = self._settings.allowed_redirect_uris
        if allowed and redirect_uri not in allowed:
            raise OAuthFailed("This redirect_uri is not allowed.")
        if not redirect_uri.startswith(("https://", "http://")):
            raise OAuthFailed("redirect_uri must be an http(s) URL.")

    async def begin(self, provider: str, *, redirect_uri: str) -> AuthorizationRequest:
        config = self._provider(provider)
        self._check_redirect(redirect_uri)
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        nonce = secrets.token_urlsafe(24)
        extra: dict[str, str] = {}
        if provider == "google":
            extra["nonce"] = nonce
        async with self._client(config, redirect_uri) as client:
            url, _ = client.create_authorization_url(
                config.authorize_url, state=state, code_verifier=verifier, **extra
            )
        record = {
            "provider": provider,
            "redirect_uri": redirect_uri,
            "verifier": verifier,
            "nonce": nonce,
        }
        await self._kv.set(
            STATE_KEY + state, json.dumps(record).encode(), ttl_s=self._settings.state_ttl_s
        )
        return AuthorizationRequest(authorization_url=url, state=state)

    async def complete(
        self, provider: str, *, code: str, redirect_uri: str, state: str
    ) -> OAuthSignIn:
        """Redeem ``code``; return the user signed in (created or linked if needed)."""
        config = self._provider(provider)
        key = STATE_KEY + state
        raw = await self._kv.get(key)
        if raw is None or not await self._kv.delete(key):
            raise OAuthFailed("Unknown or expired OAuth state; start the sign-in again.")
        record = json.loads(raw)
        if record.get("provider") != provider or record.get("redirect_uri") != redirect_uri:
            raise OAuthFailed("The OAuth state belongs to another provider or redirect_uri.")
        identity = await self._identity(
            provider, config, code=code, redirect_uri=redirect_uri, record=record
        )
        return await self._sign_in(identity)

    async def _identity(
        self,
        provider: str,
        config: OAuthProviderSettings,
        *,
        code: str,
        redirect_uri: str,
        record: dict[str, Any],
    ) -> OAuthIdentityInfo:
        try:
            async with self._client(config, redirect_uri) as client:
                token = await client.fetch_token(
                    config.token_url,
                    code=code,
                    code_verifier=record["verifier"],
                    headers={"Accept": "application/json"},
                )
                if provider == "github":
                    return await self._github_identity(client, config)
                return await self._google_identity(client, config, token, record["nonce"])
        except OAuth2Error as exc:
            raise OAuthFailed(f"The provider refused the sign-in: {exc.error}.") from exc
        except httpx.HTTPError as exc:
            log.warning("oauth.provider_unreachable", provider=provider, error=type(exc).__name__)
            raise OAuthFailed("The provider could not be reached.") from exc

    async def _github_identity(
        self, client: AsyncOAuth2Client, config: OAuthProviderSettings
    ) -> OAuthIdentityInfo:
        user = (await client.get(config.userinfo_url)).raise_for_status().json()
        emails: list[str] = []
        if config.emails_url:
            listed = (await client.get(config.emails_url)).raise_for_status().json()
            ordered = sorted(listed, key=lambda item: not item.get("primary"))
            emails = [e["email"] for e in ordered if e.get("verified") and e.get("email")]
        return OAuthIdentityInfo(
            provider="github",
            subject=str(user["id"]),
            verified_emails=emails,
            name=str(user.get("name") or user.get("login") or ""),
        )

    async def _google_identity(
        self,
        client: AsyncOAuth2Client,
        config: OAuthProviderSettings,
        token: dict[str, Any],
        nonce: str,
    ) -> OAuthIdentityInfo:
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or config.issuer is None:
            raise OAuthFailed("The provider sent no id_token.")
        discovery_url = config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        discovery = (await client.get(discovery_url)).raise_for_status().json()
        jwks = (await client.get(discovery["jwks_uri"])).raise_for_status().json()
        try:
            header = jwt.get_unverified_header(id_token)
            key_set = jwt.PyJWKSet.from_dict(jwks)
            key = next(k for k in key_set.keys if k.key_id == header.get("kid"))
            claims = jwt.decode(
                id_token,
                key.key,
                algorithms=["RS256", "ES256"],
                audience=config.client_id,
                issuer=config.issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except (jwt.PyJWTError, StopIteration) as exc:
            raise OAuthFailed("The id_token does not verify.") from exc
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise OAuthFailed("The id_token nonce does not match.")
        email = claims.get("email")
        verified = claims.get("email_verified") in (True, "true")
        return OAuthIdentityInfo(
            provider="google",
            subject=str(claims["sub"]),
            verified_emails=[str(email)] if email and verified else [],
            name=str(claims.get("name") or ""),
        )

    async def _sign_in(self, identity: OAuthIdentityInfo) -> OAuthSignIn:
        async with self._db.session() as session, session.begin():
            linked = await session.scalar(
                select(OAuthIdentity).where(
                    OAuthIdentity.provider == identity.provider,
                    OAuthIdentity.subject == identity.subject,
                )
            )
            if linked is not None:
                user = await session.get(User, linked.user_id)
                if user is None or user.deleted_at is not None:
                    raise OAuthFailed("The linked account was deleted.")
                return OAuthSignIn(user_id=user.id, created=False, linked=False)
        emails = []
        for address in identity.verified_emails:
            try:
                emails.append(normalize_email(address))
            except ValueError:
                continue
        if not emails:
            raise OAuthFailed(
                "The provider has no verified email address for this account; verify one there."
            )
        now = utcnow()
        try:
            async with self._db.session() as session, session.begin():
                existing = await session.scalar(select(User).where(User.email.in_(emails)))
                created = existing is None
                taken_over = False
                if existing is None:
                    user = User(
                        id=new_id(),
                        email=emails[0],
                        name=identity.name[:200] or emails[0].split("@", 1)[0],
                        password_hash=None,
                        email_verified_at=now,
                    )
                    session.add(user)
                    await session.flush()
                else:
                    user = existing
                    taken_over = user.email_verified_at is None
                    if taken_over:
                        # Whoever registered this address never proved it: they lose access.
                        user.password_hash = None
                        user.email_verified_at = now
                        user.token_epoch = user.token_epoch + 1
                        await session.execute(
                            update(RefreshToken)
                            .where(RefreshToken.user_id == user.id)
                            .values(revoked_at=now)
                        )
                session.add(
                    OAuthIdentity(
                        id=new_id(),
                        user_id=user.id,
                        provider=identity.provider,
                        subject=identity.subject,
                        email=emails[0],
                    )
                )
                user_id = user.id
        except IntegrityError as exc:  # a concurrent first sign-in of the same identity
            raise OAuthFailed("A concurrent sign-in linked this account; try again.") from exc
        if taken_over and self._revocations is not None:
            await self._revocations.revoke(user_id)
        log.info("oauth.linked", provider=identity.provider, created=created)
        return OAuthSignIn(user_id=user_id, created=created, linked=True)
