"""Accounts: registration and sign-in, and the one façade the gateway calls.

``AccountService`` registers users and checks passwords (and the second factor) itself; sign-in
sessions (``accounts.sessions``), bearer authentication (``accounts.bearer``) and API keys
(``accounts.api_keys``) live in their own modules and are reached through it. Password hashing
runs in a worker thread so a login never stalls other requests.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from accounts.api_keys import KNOWN_SCOPES, ApiKeyService
from accounts.bearer import BearerAuthenticator
from accounts.errors import EmailTaken, InvalidCredentials, InvalidEmail
from accounts.passwords import PasswordPolicy
from accounts.principals import (
    ApiKeyInfo,
    CreatedApiKey,
    LoginResult,
    Principal,
    SessionInfo,
    TokenPair,
    UserInfo,
)
from accounts.revocation import Revocations
from accounts.sessions import SessionService
from accounts.settings import AuthSettings
from accounts.tokens import AccessTokenCodec
from accounts.twofactor import TwoFactor
from state.db import Database
from state.kv import KeyValueStore, MemoryKeyValueStore
from state.models import User, new_id
from state.threads import run_sync

__all__ = [
    "KNOWN_SCOPES",
    "AccountService",
    "ApiKeyInfo",
    "CreatedApiKey",
    "LoginResult",
    "Principal",
    "SessionInfo",
    "TokenPair",
    "UserInfo",
    "normalize_email",
]


def normalize_email(email: str) -> str:
    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from exc
    return result.normalized.lower()


class AccountService:
    """Users, credentials and the authentication of bearer credentials.

    ``kv`` holds the revocation generations: pass the replicas' shared store (Redis) so a
    revocation on one replica is seen by all; None keeps them in this process (one process, or
    tools such as the CLI).
    """

    def __init__(
        self,
        db: Database,
        settings: AuthSettings,
        *,
        two_factor: TwoFactor | None = None,
        kv: KeyValueStore | None = None,
    ) -> None:
        self._db = db
        self._passwords = PasswordPolicy(settings)
        self._two_factor = two_factor
        codec = AccessTokenCodec(settings)
        self.revocations = Revocations(
            kv or MemoryKeyValueStore(), cache_ttl_s=settings.user_cache_ttl_s
        )
        self._bearer = BearerAuthenticator(db, settings, codec=codec, revocations=self.revocations)
        self._sessions = SessionService(db, settings, codec=codec, bearer=self._bearer)
        self._keys = ApiKeyService(db, bearer=self._bearer)

    @property
    def passwords(self) -> PasswordPolicy:
        return self._passwords

    # -- registration and login ---------------------------------------------------------------

    async def register(self, *, email: str, password: str, name: str | None = None) -> UserInfo:
        address = normalize_email(email)
        self._passwords.validate(password)
        password_hash = await run_sync(self._passwords.hash, password)
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
        matched = await run_sync(self._passwords.verify, stored_hash, password)
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
            new_hash = await run_sync(self._passwords.hash, password)
            async with self._db.session() as session, session.begin():
                await session.execute(
                    update(User).where(User.id == user.id).values(password_hash=new_hash)
                )
        return LoginResult(
            pair=await self._sessions.start(user.id, user_agent=user_agent, ip=ip),
            second_factor=second_factor,
        )

    async def set_admin(self, email: str, *, admin: bool) -> UserInfo:
        """Grant or revoke platform administration (operators do this from the CLI)."""
        address = normalize_email(email)
        async with self._db.session() as session, session.begin():
            user = await session.scalar(select(User).where(User.email == address))
            if user is None:
                raise InvalidEmail(f"No account has the email {address}.")
            user.is_admin = admin
        await self._bearer.revoke(user.id)
        return UserInfo.of(user)

    # -- bearer credentials and revocation (accounts.bearer) ----------------------------------

    async def authenticate(self, credential: str) -> Principal:
        """Return who presents ``credential`` (an access token or an API key)."""
        return await self._bearer.authenticate(credential)

    async def forget_user(self, user_id: str) -> None:
        """The user's credentials or rights just changed: stop using cached answers about them,
        here and on every replica sharing the key-value store."""
        await self._bearer.revoke(user_id)

    # -- sessions (accounts.sessions) ---------------------------------------------------------

    async def start_session(
        self, user_id: str, *, user_agent: str | None, ip: str | None
    ) -> TokenPair:
        """A new sign-in for an already authenticated user (password, OAuth)."""
        return await self._sessions.start(user_id, user_agent=user_agent, ip=ip)

    async def refresh(
        self, refresh_token: str, *, user_agent: str | None = None, ip: str | None = None
    ) -> TokenPair:
        """Rotate a refresh token. A token presented twice revokes its whole family."""
        return await self._sessions.refresh(refresh_token, user_agent=user_agent, ip=ip)

    async def logout(
        self, principal: Principal, *, refresh_token: str | None, everywhere: bool
    ) -> None:
        await self._sessions.logout(principal, refresh_token=refresh_token, everywhere=everywhere)

    async def list_sessions(self, user_id: str) -> list[SessionInfo]:
        return await self._sessions.list_for(user_id)

    async def revoke_session(self, user_id: str, session_id: str) -> None:
        await self._sessions.revoke(user_id, session_id)

    async def revoke_other_sessions(self, user_id: str, *, keep: str | None) -> None:
        await self._sessions.revoke_others(user_id, keep=keep)

    async def reissue_access(self, user_id: str, session_id: str | None) -> TokenPair:
        return await self._sessions.reissue_access(user_id, session_id)

    # -- API keys (accounts.api_keys) ---------------------------------------------------------

    async def create_api_key(
        self, principal: Principal, *, name: str, scopes: list[str] | None
    ) -> CreatedApiKey:
        return await self._keys.create(principal, name=name, scopes=scopes)

    async def list_api_keys(self, user_id: str) -> list[ApiKeyInfo]:
        return await self._keys.list_for(user_id)

    async def revoke_api_key(self, user_id: str, key_id: str) -> bool:
        """Return False when the user has no live key with that id."""
        return await self._keys.revoke(user_id, key_id)
