"""Sign-in basics: registration, login, token rotation, API keys and bearer authentication.

The service is a plain async class over the database; the gateway calls it and maps its errors.
Password hashing runs in a worker thread so a login never stalls other requests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from accounts.errors import (
    ApiKeyInvalid,
    EmailTaken,
    InvalidCredentials,
    InvalidEmail,
    RefreshTokenInvalid,
    RefreshTokenReused,
    ScopeNotAllowed,
    TokenInvalid,
)
from accounts.passwords import PasswordPolicy
from accounts.settings import AuthSettings
from accounts.tokens import (
    API_KEY_PREFIX,
    REFRESH_TOKEN_PREFIX,
    AccessTokenCodec,
    hash_secret,
    new_secret,
)
from state.db import Database
from state.models import ApiKey, RefreshToken, User, new_id, utcnow

__all__ = ["AccountService", "CreatedApiKey", "Principal", "TokenPair", "UserInfo"]

API_KEY_TOUCH_INTERVAL_S = 60.0
KNOWN_SCOPES = frozenset({"api", "ai", "workspaces:read", "workspaces:write", "admin"})


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: str
    email: str
    name: str
    created_at: datetime
    is_admin: bool
    token_epoch: int

    @classmethod
    def of(cls, user: User) -> UserInfo:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            created_at=user.created_at,
            is_admin=user.is_admin,
            token_epoch=user.token_epoch,
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

    def has_scope(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes or "api" in self.scopes


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    id: str
    name: str
    key: str
    scopes: list[str]
    created_at: datetime


def normalize_email(email: str) -> str:
    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from exc
    return result.normalized.lower()


class AccountService:
    """Users, credentials and the authentication of bearer credentials."""

    def __init__(self, db: Database, settings: AuthSettings) -> None:
        self._db = db
        self._settings = settings
        self._passwords = PasswordPolicy(settings)
        self._access = AccessTokenCodec(settings)
        # user id -> (monotonic deadline, user): bounds database reads on the hot path.
        self._user_cache: dict[str, tuple[float, UserInfo]] = {}
        self._key_cache: dict[str, tuple[float, Principal]] = {}
        self._key_touched: dict[str, float] = {}

    # -- registration and login ---------------------------------------------------------------

    async def register(self, *, email: str, password: str, name: str | None = None) -> UserInfo:
        address = normalize_email(email)
        self._passwords.validate(password)
        password_hash = await anyio.to_thread.run_sync(self._passwords.hash, password)
        user = User(
            id=new_id(),
            email=address,
            name=(name or "").strip() or address.split("@", 1)[0],
            password_hash=password_hash,
        )
        try:
            async with self._db.session() as session, session.begin():
                session.add(user)
        except IntegrityError as exc:
            raise EmailTaken() from exc
        return UserInfo.of(user)

    async def login(
        self, *, email: str, password: str, user_agent: str | None = None, ip: str | None = None
    ) -> TokenPair:
        try:
            address = normalize_email(email)
        except InvalidEmail as exc:
            raise InvalidCredentials() from exc
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.email == address))
        stored_hash = user.password_hash if user is not None else None
        matched = await anyio.to_thread.run_sync(self._passwords.verify, stored_hash, password)
        if user is None or not matched:
            raise InvalidCredentials()
        if stored_hash is not None and self._passwords.needs_rehash(stored_hash):
            new_hash = await anyio.to_thread.run_sync(self._passwords.hash, password)
            async with self._db.session() as session, session.begin():
                await session.execute(
                    update(User).where(User.id == user.id).values(password_hash=new_hash)
                )
        info = UserInfo.of(user)
        refresh = await self._issue_refresh(
            user_id=user.id, family_id=new_id(), user_agent=user_agent, ip=ip
        )
        return self._pair(info, refresh)

    # -- refresh-token rotation ---------------------------------------------------------------

    async def refresh(
        self, refresh_token: str, *, user_agent: str | None = None, ip: str | None = None
    ) -> TokenPair:
        """Rotate a refresh token. A token presented twice revokes its whole family."""
        if not refresh_token.startswith(REFRESH_TOKEN_PREFIX):
            raise RefreshTokenInvalid()
        token_hash = hash_secret(refresh_token)
        now = utcnow()
        async with self._db.session() as session, session.begin():
            row = await session.scalar(
                select(RefreshToken).where(RefreshToken.token_hash == token_hash)
            )
            if row is None or row.revoked_at is not None or row.expires_at <= now:
                raise RefreshTokenInvalid()
            # Mark used atomically: only one concurrent refresh of the same token may win.
            claimed = await session.execute(
                update(RefreshToken)
                .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
                .values(used_at=now)
            )
            reused = claimed.rowcount == 0  # type: ignore[attr-defined]
            if reused:
                await session.execute(
                    update(RefreshToken)
                    .where(RefreshToken.family_id == row.family_id)
                    .values(revoked_at=now)
                )
            user = await session.get(User, row.user_id)
            family_id, user_id = row.family_id, row.user_id
        if reused:
            raise RefreshTokenReused()
        if user is None:
            raise RefreshTokenInvalid()
        refresh = await self._issue_refresh(
            user_id=user_id, family_id=family_id, user_agent=user_agent, ip=ip
        )
        return self._pair(UserInfo.of(user), refresh)

    async def logout(
        self, principal: Principal, *, refresh_token: str | None, everywhere: bool
    ) -> None:
        """End the sign-in that ``refresh_token`` belongs to, or every sign-in of the user."""
        now = utcnow()
        async with self._db.session() as session, session.begin():
            if everywhere:
                await session.execute(
                    update(RefreshToken)
                    .where(
                        RefreshToken.user_id == principal.user.id,
                        RefreshToken.revoked_at.is_(None),
                    )
                    .values(revoked_at=now)
                )
                await session.execute(
                    update(User)
                    .where(User.id == principal.user.id)
                    .values(token_epoch=User.token_epoch + 1)
                )
            elif refresh_token is not None:
                row = await session.scalar(
                    select(RefreshToken).where(
                        RefreshToken.token_hash == hash_secret(refresh_token),
                        RefreshToken.user_id == principal.user.id,
                    )
                )
                if row is not None:
                    await session.execute(
                        update(RefreshToken)
                        .where(RefreshToken.family_id == row.family_id)
                        .values(revoked_at=now)
                    )
        if everywhere:
            self._user_cache.pop(principal.user.id, None)

    async def set_admin(self, email: str, *, admin: bool) -> UserInfo:
        """Grant or revoke platform administration (operators do this from the CLI)."""
        address = normalize_email(email)
        async with self._db.session() as session, session.begin():
            user = await session.scalar(select(User).where(User.email == address))
            if user is None:
                raise InvalidEmail(f"No account has the email {address}.")
            user.is_admin = admin
        self._user_cache.pop(user.id, None)
        return UserInfo.of(user)

    # -- API keys ----------------------------------------------------------------------------

    async def create_api_key(
        self, principal: Principal, *, name: str, scopes: list[str] | None
    ) -> CreatedApiKey:
        chosen = sorted(set(scopes)) if scopes else ["api"]
        unknown = set(chosen) - KNOWN_SCOPES
        if unknown:
            raise ScopeNotAllowed(sorted(unknown))
        if principal.scopes is not None and not set(chosen) <= principal.scopes | {"api"}:
            raise ScopeNotAllowed(sorted(set(chosen) - principal.scopes))
        key = new_secret(API_KEY_PREFIX)
        row = ApiKey(
            id=new_id(),
            user_id=principal.user.id,
            name=name.strip(),
            key_hash=hash_secret(key),
            scopes=chosen,
        )
        async with self._db.session() as session, session.begin():
            session.add(row)
        return CreatedApiKey(
            id=row.id, name=row.name, key=key, scopes=chosen, created_at=row.created_at
        )

    # -- authentication of bearer credentials -------------------------------------------------

    async def authenticate(self, credential: str) -> Principal:
        """Return who presents ``credential`` (an access token or an API key)."""
        if credential.startswith(API_KEY_PREFIX):
            return await self._authenticate_api_key(credential)
        claims = self._access.verify(credential)
        user = await self._cached_user(claims.user_id)
        if user is None or user.token_epoch != claims.token_epoch:
            raise TokenInvalid()
        return Principal(user=user, via="access_token")

    async def _authenticate_api_key(self, key: str) -> Principal:
        key_hash = hash_secret(key)
        now_mono = time.monotonic()
        cached = self._key_cache.get(key_hash)
        if cached is not None and cached[0] > now_mono:
            principal = cached[1]
        else:
            now = utcnow()
            async with self._db.session() as session:
                row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
                if (
                    row is None
                    or row.revoked_at is not None
                    or (row.expires_at is not None and row.expires_at <= now)
                ):
                    raise ApiKeyInvalid()
                user = await session.get(User, row.user_id)
            if user is None:
                raise ApiKeyInvalid()
            principal = Principal(
                user=UserInfo.of(user),
                via="api_key",
                scopes=frozenset(row.scopes),
                api_key_id=row.id,
            )
            self._key_cache[key_hash] = (now_mono + self._settings.user_cache_ttl_s, principal)
        await self._touch_api_key(principal)
        return principal

    async def _touch_api_key(self, principal: Principal) -> None:
        key_id = principal.api_key_id
        if key_id is None:
            return
        now_mono = time.monotonic()
        if now_mono - self._key_touched.get(key_id, -1e9) < API_KEY_TOUCH_INTERVAL_S:
            return
        self._key_touched[key_id] = now_mono
        async with self._db.session() as session, session.begin():
            await session.execute(
                update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow())
            )

    async def _cached_user(self, user_id: str) -> UserInfo | None:
        now_mono = time.monotonic()
        cached = self._user_cache.get(user_id)
        if cached is not None and cached[0] > now_mono:
            return cached[1]
        async with self._db.session() as session:
            user = await session.get(User, user_id)
        if user is None:
            self._user_cache.pop(user_id, None)
            return None
        info = UserInfo.of(user)
        if len(self._user_cache) > 100_000:
            self._user_cache.clear()
        self._user_cache[user_id] = (now_mono + self._settings.user_cache_ttl_s, info)
        return info

    # -- internals ----------------------------------------------------------------------------

    async def _issue_refresh(
        self, *, user_id: str, family_id: str, user_agent: str | None, ip: str | None
    ) -> str:
        token = new_secret(REFRESH_TOKEN_PREFIX)
        row = RefreshToken(
            id=new_id(),
            user_id=user_id,
            family_id=family_id,
            token_hash=hash_secret(token),
            expires_at=utcnow() + timedelta(seconds=self._settings.refresh_token_ttl_s),
            user_agent=(user_agent or "")[:400] or None,
            ip=ip,
        )
        async with self._db.session() as session, session.begin():
            session.add(row)
        return token

    def _pair(self, user: UserInfo, refresh_token: str) -> TokenPair:
        access = self._access.issue(user_id=user.id, token_epoch=user.token_epoch)
        return TokenPair(
            access_token=access,
            refresh_token=refresh_token,
            expires_in=self._access.ttl_s,
            user=user,
        )
