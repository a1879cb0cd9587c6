"""Sign-ins as refresh-token families: issue, rotate (with reuse detection), list, end.

Every way a sign-in ends goes through ``BearerAuthenticator.revoke`` after the database
changed, so the access tokens of that sign-in are refused on the very next request.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from accounts.bearer import BearerAuthenticator
from accounts.errors import (
    InvalidCredentials,
    RefreshTokenInvalid,
    RefreshTokenReused,
    SessionNotFound,
    TokenInvalid,
)
from accounts.principals import Principal, SessionInfo, TokenPair, UserInfo
from accounts.settings import AuthSettings
from accounts.tokens import REFRESH_TOKEN_PREFIX, AccessTokenCodec, hash_secret, new_secret
from state.db import Database
from state.models import RefreshToken, User, new_id, utcnow

__all__ = ["SessionService"]


class SessionService:
    def __init__(
        self,
        db: Database,
        settings: AuthSettings,
        *,
        codec: AccessTokenCodec,
        bearer: BearerAuthenticator,
    ) -> None:
        self._db = db
        self._settings = settings
        self._access = codec
        self._bearer = bearer

    async def start(self, user_id: str, *, user_agent: str | None, ip: str | None) -> TokenPair:
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
            await self._bearer.revoke(user_id)
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
        """End the sign-in that ``refresh_token`` belongs to (or the caller's own), or every
        sign-in of the user."""
        user_id = principal.user.id
        if everywhere:
            await self.revoke_others(user_id, keep=None)
            return
        family_id = principal.session_id
        if refresh_token is not None:
            async with self._db.session() as session:
                family_id = await session.scalar(
                    select(RefreshToken.family_id).where(
                        RefreshToken.token_hash == hash_secret(refresh_token),
                        RefreshToken.user_id == user_id,
                    )
                )
        if family_id is not None:
            await self._end_family(user_id, family_id)

    async def list_for(self, user_id: str) -> list[SessionInfo]:
        """The user's live sign-ins, most recently used first."""
        now = utcnow()
        async with self._db.session() as session:
            rows = await session.scalars(
                select(RefreshToken)
                .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
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

    async def revoke(self, user_id: str, session_id: str) -> None:
        """End one sign-in: its refresh token stops working, its access tokens too."""
        if not await self._end_family(user_id, session_id):
            raise SessionNotFound()

    async def revoke_others(self, user_id: str, *, keep: str | None) -> None:
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
        await self._bearer.revoke(user_id)

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

    async def _end_family(self, user_id: str, family_id: str) -> bool:
        """Revoke a live family of ``user_id``; return False if there was none."""
        async with self._db.session() as session, session.begin():
            result = await session.execute(
                update(RefreshToken)
                .where(
                    RefreshToken.user_id == user_id,
                    RefreshToken.family_id == family_id,
                    RefreshToken.revoked_at.is_(None),
                )
                .values(revoked_at=utcnow())
            )
        ended = bool(result.rowcount)  # type: ignore[attr-defined]
        if ended:
            await self._bearer.revoke(user_id)
        return ended

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
