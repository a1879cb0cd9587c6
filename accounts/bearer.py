"""Who presents a bearer credential: an access token (JWT) or an API key.

The hot path of every request. An access token is verified locally (HS256); the user behind it,
its sign-in and an API key's row are read from the database and cached per replica, each answer
stamped with the user's revocation generation (``accounts.revocation``) so that a revocation is
seen on the very next request, on every replica.
"""

from __future__ import annotations

import time

from sqlalchemy import select, update

from accounts.errors import ApiKeyInvalid, TokenInvalid
from accounts.principals import Principal, UserInfo
from accounts.revocation import Revocations, StampedCache
from accounts.settings import AuthSettings
from accounts.tokens import API_KEY_PREFIX, AccessTokenCodec, hash_secret
from state.db import Database
from state.models import ApiKey, RefreshToken, User, utcnow

__all__ = ["BearerAuthenticator"]

API_KEY_TOUCH_INTERVAL_S = 60.0


class BearerAuthenticator:
    def __init__(
        self,
        db: Database,
        settings: AuthSettings,
        *,
        codec: AccessTokenCodec,
        revocations: Revocations,
    ) -> None:
        self._db = db
        self._access = codec
        self.revocations = revocations
        ttl_s = settings.user_cache_ttl_s
        self._users: StampedCache[UserInfo] = StampedCache(ttl_s)
        # session id -> still signed in
        self._sessions: StampedCache[bool] = StampedCache(ttl_s)
        # key hash -> principal, and key hash -> its user (whose generation the entry needs).
        self._keys: StampedCache[Principal] = StampedCache(ttl_s)
        self._key_users: dict[str, str] = {}
        self._key_touched: dict[str, float] = {}

    async def authenticate(self, credential: str) -> Principal:
        """Return who presents ``credential``; ``TokenInvalid``/``ApiKeyInvalid`` otherwise."""
        if credential.startswith(API_KEY_PREFIX):
            return await self._authenticate_api_key(credential)
        claims = self._access.verify(credential)
        generation = await self.revocations.generation(claims.user_id)
        user = await self._user(claims.user_id, generation)
        if user is None or user.token_epoch != claims.token_epoch:
            raise TokenInvalid()
        if claims.session_id is not None and not await self._session_live(
            claims.session_id, generation
        ):
            raise TokenInvalid("This session was signed out.")
        return Principal(user=user, via="access_token", session_id=claims.session_id)

    async def revoke(self, user_id: str) -> None:
        """Answers cached about ``user_id`` stop counting here and on every other replica."""
        await self.revocations.revoke(user_id)
        self._users.pop(user_id)

    async def _user(self, user_id: str, generation: int) -> UserInfo | None:
        cached = self._users.get(user_id, generation)
        if cached is not None:
            return cached
        async with self._db.session() as session:
            user = await session.get(User, user_id)
        if user is None or user.deleted_at is not None:
            return None
        info = UserInfo.of(user)
        self._users.put(user_id, generation, info)
        return info

    async def _session_live(self, session_id: str, generation: int) -> bool:
        cached = self._sessions.get(session_id, generation)
        if cached is not None:
            return cached
        async with self._db.session() as session:
            live = await session.scalar(
                select(RefreshToken.id)
                .where(RefreshToken.family_id == session_id, RefreshToken.revoked_at.is_(None))
                .limit(1)
            )
        self._sessions.put(session_id, generation, live is not None)
        return live is not None

    async def _authenticate_api_key(self, key: str) -> Principal:
        key_hash = hash_secret(key)
        user_id = self._key_users.get(key_hash)
        principal = None
        if user_id is not None:
            principal = self._keys.get(key_hash, await self.revocations.generation(user_id))
        if principal is None:
            principal = await self._load_api_key(key_hash)
        await self._touch_api_key(principal)
        return principal

    async def _load_api_key(self, key_hash: str) -> Principal:
        async with self._db.session() as session:
            user_id = await session.scalar(
                select(ApiKey.user_id).where(ApiKey.key_hash == key_hash)
            )
        if user_id is None:
            raise ApiKeyInvalid()
        # The generation is read before the rows the answer is made of: a revocation that
        # lands in between then leaves a stale stamp, not a stale answer.
        generation = await self.revocations.generation(user_id)
        now = utcnow()
        async with self._db.session() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
            user = await session.get(User, user_id)
        if (
            row is None
            or row.revoked_at is not None
            or (row.expires_at is not None and row.expires_at <= now)
            or user is None
            or user.deleted_at is not None
        ):
            raise ApiKeyInvalid()
        principal = Principal(
            user=UserInfo.of(user), via="api_key", scopes=frozenset(row.scopes), api_key_id=row.id
        )
        if len(self._key_users) >= 100_000:
            self._key_users.clear()
        self._key_users[key_hash] = row.user_id
        self._keys.put(key_hash, generation, principal)
        return principal

    async def _touch_api_key(self, principal: Principal) -> None:
        key_id = principal.api_key_id
        if key_id is None:
            return
        now_mono = time.monotonic()
        if now_mono - self._key_touched.get(key_id, -1e9) < API_KEY_TOUCH_INTERVAL_S:
            return
        if len(self._key_touched) >= 100_000:
            self._key_touched.clear()
        self._key_touched[key_id] = now_mono
        async with self._db.session() as session, session.begin():
            await session.execute(
                update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow())
            )
