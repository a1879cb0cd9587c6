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
    SessionNotFound,
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
from accounts.twofactor import TwoFactor
from state.db import Database
from state.models import ApiKey, RefreshToken, User, new_id, utcnow

__all__ = [
    "AccountService",
    "CreatedApiKey",
    "LoginResult",
    "Principal",
    "SessionInfo",
    "TokenPair",
    "UserInfo",
]

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


def normalize_email(email: str) -> str:
    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from exc
    return result.normalized.lower()


class AccountService:
    """Users, credentials and the authentication of bearer credentials."""

    def __init__(
        self, db: Database, settings: AuthSettings, *, two_factor: TwoFactor | None = None
    ) -> None:
        self._db = db
        self._settings = settings
        self._passwords = PasswordPolicy(settings)
        self._access = AccessTokenCodec(settings)
        self._two_factor = two_factor
        # session id -> (monotonic deadline, still signed in)
        self._session_cache: dict[str, tuple[float, bool]] = {}
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

    @property
    def passwords(self) -> PasswordPolicy:
        return self._passwords

    async def login(
        self,
        *,
        email: str,
        password: str,
        user_agent: str | None = None,
        ip: str | None = None,
        totp_code: str | None = None,
        recovery_code: str | None = None,
    ) -> TokenPair:
        result = await self.login_verbose(
            email=email,
            password=password,
            user_agent=user_agent,
            ip=ip,
            totp_code=totp_code,
            recovery_code=recovery_code,
        )
        return result.pair

    async def login_verbose(
        self,
        *,
        email: str,
        password: str,
        user_agent: str | None = None,
        ip: str | None = None,
        totp_code: str | None = None,
        recovery_code: str | None = None,
    ) -> LoginResult:
        """Sign in with a password, and the second factor when the account has one on."""
        try:
            address = normalize_email(email)
        except InvalidEmail as exc:
            raise InvalidCredentials() from exc
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.email == address))
        stored_hash = user.password_hash if user is not None else None
        matched = await anyio.to_thread.run_sync(self._passwords.verify, stored_hash, password)
        if user is None or not matched or user.deleted_at is not None:
            raise InvalidCredentials()
        second_factor: str | None = None
        if user.totp_enabled_at is not None:
            if self._two_factor is None:
                raise InvalidCredentials("Two-factor sign-in is not available here.")
            second_factor = await self._two_factor.verify(
                user.id, totp_code=totp_code, recovery_code=recovery_code
            )
        if stored_hash is not None and self._passwords.needs_rehash(stored_hash):
            new_hash = await anyio.to_thread.run_sync(self._passwords.hash, password)
            async with self._db.session() as session, session.begin():
                await session.execute(
                    update(User).where(User.id == user.id).values(password_hash=new_hash)
                )
        return LoginResult(
            pair=await self.start_session(user.id, user_agent=user_agent, ip=ip),
            second_factor=second_factor,
        )

    async def start_session(
        self, user_id: str, *, user_agent: str | None, ip: str | None
    ) -> TokenPair:
        """A new sign-in for an already authenticated user (password, OAuth)."""
        async with self._db.session() as session:
            user = await session.get(User, user_id)
        if user is None or user.deleted_at is not None:
            raise InvalidCredentials()
        family_id = new_id()
        refresh = await self._issue_refresh(
            user_id=user.id, family_id=family_id, user_agent=user_agent, ip=ip
        )
        return self._pair(UserInfo.of(user), refresh, family_id)

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
        if user is None or user.deleted_at is not None:
            raise RefreshTokenInvalid()
        refresh = await self._issue_refresh(
            user_id=user_id, family_id=family_id, user_agent=user_agent, ip=ip
        )
        return self._pair(UserInfo.of(user), refresh, family_id)

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
            elif refresh_token is None and principal.session_id is not None:
                await session.execute(
                    update(RefreshToken)
                    .where(
                        RefreshToken.family_id == principal.session_id,
                        RefreshToken.user_id == principal.user.id,
                    )
                    .values(revoked_at=now)
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
        self._session_cache.clear()

    # -- sessions (refresh-token families) ----------------------------------------------------

    async def list_sessions(self, user_id: str) -> list[SessionInfo]:
        """The user's live sign-ins, most recently used first."""
        now = utcnow()
        async with self._db.session() as session:
            rows = await session.scalars(
                select(RefreshToken)
                .where(
                    RefreshToken.user_id == user_id,
                    RefreshToken.revoked_at.is_(None),
                )
                .order_by(RefreshToken.created_at)
            )
            families: dict[str, list[RefreshToken]] = {}
            for row in rows:
                families.setdefault(row.family_id, []).append(row)
        sessions = []
        for family_id, tokens in families.items():
            latest = tokens[-1]
            if latest.used_at is not None or latest.expires_at <= now:
                continue  # rotated away without a successor (reuse) or expired
            sessions.append(
                SessionInfo(
                    id=family_id,
                    created_at=tokens[0].created_at,
                    last_used_at=latest.created_at,
                    expires_at=latest.expires_at,
                    user_agent=latest.user_agent,
                    ip=latest.ip,
                )
            )
        return sorted(sessions, key=lambda info: info.last_used_at, reverse=True)

    async def revoke_session(self, user_id: str, session_id: str) -> None:
        """End one sign-in: its refresh token stops working, its access tokens too."""
        async with self._db.session() as session, session.begin():
            result = await session.execute(
                update(RefreshToken)
                .where(
                    RefreshToken.user_id == user_id,
                    RefreshToken.family_id == session_id,
                    RefreshToken.revoked_at.is_(None),
                )
                .values(revoked_at=utcnow())
            )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise SessionNotFound()
        self._session_cache.pop(session_id, None)

    async def revoke_other_sessions(self, user_id: str, *, keep: str | None) -> None:
        """End every sign-in of the user except ``keep``; bump the token epoch."""
        async with self._db.session() as session, session.begin():
            statement = update(RefreshToken).where(
                RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None)
            )
            if keep is not None:
                statement = statement.where(RefreshToken.family_id != keep)
            await session.execute(statement.values(revoked_at=utcnow()))
            await session.execute(
                update(User).where(User.id == user_id).values(token_epoch=User.token_epoch + 1)
            )
        self.forget_user(user_id)

    async def reissue_access(self, user_id: str, session_id: str | None) -> TokenPair:
        """A new pair for the caller's own sign-in after its token epoch moved on."""
        async with self._db.session() as session:
            user = await session.get(User, user_id)
        if user is None or user.deleted_at is not None:
            raise TokenInvalid()
        family_id = session_id or new_id()
        refresh = await self._issue_refresh(
            user_id=user_id, family_id=family_id, user_agent=None, ip=None
        )
        if session_id is not None:
            # The family's previous refresh token is replaced by the new one.
            async with self._db.session() as session, session.begin():
                await session.execute(
                    update(RefreshToken)
                    .where(
                        RefreshToken.family_id == family_id,
                        RefreshToken.token_hash != hash_secret(refresh),
                        RefreshToken.used_at.is_(None),
                    )
                    .values(used_at=utcnow())
                )
        return self._pair(UserInfo.of(user), refresh, family_id)

    def forget_user(self, user_id: str) -> None:
        """Drop cached state of a user whose credentials just changed."""
        self._user_cache.pop(user_id, None)
        self._key_cache.clear()
        self._session_cache.clear()

    async def _session_live(self, session_id: str) -> bool:
        now_mono = time.monotonic()
        cached = self._session_cache.get(session_id)
        if cached is not None and cached[0] > now_mono:
            return cached[1]
        async with self._db.session() as session:
            live = await session.scalar(
                select(RefreshToken.id)
                .where(RefreshToken.family_id == session_id, RefreshToken.revoked_at.is_(None))
                .limit(1)
            )
        if len(self._session_cache) > 100_000:
            self._session_cache.clear()
        self._session_cache[session_id] = (
            now_mono + self._settings.user_cache_ttl_s,
            live is not None,
        )
        return live is not None

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
        if claims.session_id is not None and not await self._session_live(claims.session_id):
            raise TokenInvalid("This session was signed out.")
        return Principal(user=user, via="access_token", session_id=claims.session_id)

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
            if user is None or user.deleted_at is not None:
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
        if user is None or user.deleted_at is not None:
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

    def _pair(self, user: UserInfo, refresh_token: str, session_id: str) -> TokenPair:
        access = self._access.issue(
            user_id=user.id, token_epoch=user.token_epoch, session_id=session_id
        )
        return TokenPair(
            access_token=access,
            refresh_token=refresh_token,
            expires_in=self._access.ttl_s,
            user=user,
        )
