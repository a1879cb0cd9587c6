"""API keys: created with scopes (shown once, stored hashed), listed without the key, revoked."""

from __future__ import annotations

from sqlalchemy import select, update

from accounts.bearer import BearerAuthenticator
from accounts.errors import ScopeNotAllowed
from accounts.principals import ApiKeyInfo, CreatedApiKey, Principal
from accounts.tokens import API_KEY_PREFIX, hash_secret, new_secret
from state.db import Database
from state.models import ApiKey, new_id, utcnow

__all__ = ["KNOWN_SCOPES", "ApiKeyService"]

KNOWN_SCOPES = frozenset({"api", "ai", "workspaces:read", "workspaces:write", "admin"})


class ApiKeyService:
    def __init__(self, db: Database, *, bearer: BearerAuthenticator) -> None:
        self._db = db
        self._bearer = bearer

    async def create(
        self, principal: Principal, *, name: str, scopes: list[str] | None
    ) -> CreatedApiKey:
        """A new key; a key cannot mint one broader than itself (``ScopeNotAllowed``)."""
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

    async def list_for(self, user_id: str) -> list[ApiKeyInfo]:
        """The user's keys that are not revoked, newest first."""
        async with self._db.session() as session:
            rows = await session.scalars(
                select(ApiKey)
                .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
                .order_by(ApiKey.created_at.desc(), ApiKey.id)
            )
            return [
                ApiKeyInfo(
                    id=row.id,
                    name=row.name,
                    scopes=list(row.scopes),
                    created_at=row.created_at,
                    last_used_at=row.last_used_at,
                )
                for row in rows
            ]

    async def revoke(self, user_id: str, key_id: str) -> bool:
        """Revoke one of the user's keys: refused from the very next request on.

        Return False when the user has no live key with that id (someone else's key gets the
        same answer).
        """
        async with self._db.session() as session, session.begin():
            result = await session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        await self._bearer.revoke(user_id)
        return True
