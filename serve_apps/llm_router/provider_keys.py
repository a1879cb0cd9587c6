"""Users' own provider API keys ("bring your own key"), encrypted at rest, never returned.

AES-256-GCM with a random 96-bit nonce per key; the user id and provider are the associated
data, so a ciphertext copied to another row or user fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr
from sqlalchemy import delete, select

from serve_apps.llm_router.errors import InvalidProviderKey
from state.db import Database
from state.models import ProviderKey

__all__ = ["KeyCipher", "ProviderKeyInfo", "ProviderKeyStore", "derive_key_encryption_key"]

NONCE_BYTES = 12
PROVIDER_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
MAX_API_KEY_CHARS = 4096


def derive_key_encryption_key(secret: str) -> SecretStr:
    """A 32-byte key (base64) derived from another secret, e.g. the JWT secret in development."""
    digest = hashlib.sha256(b"vibecode/provider-keys/v1\x00" + secret.encode()).digest()
    return SecretStr(base64.b64encode(digest).decode())


class KeyCipher:
    """AES-256-GCM over ``nonce || ciphertext``, bound to (user id, provider)."""

    def __init__(self, key: SecretStr) -> None:
        try:
            raw = base64.b64decode(key.get_secret_value(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("the key encryption key must be base64") from exc
        if len(raw) != 32:
            raise ValueError("the key encryption key must decode to 32 bytes")
        self._aead = AESGCM(raw)

    @staticmethod
    def _aad(user_id: str, provider: str) -> bytes:
        return f"{user_id}\x00{provider}".encode()

    def encrypt(self, plaintext: str, *, user_id: str, provider: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), self._aad(user_id, provider))
        return nonce + sealed

    def decrypt(self, blob: bytes, *, user_id: str, provider: str) -> str:
        """Raise ``ValueError`` when ``blob`` was not sealed with this key for this row."""
        try:
            plain = self._aead.decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], self._aad(user_id, provider)
            )
        except InvalidTag as exc:
            raise ValueError("provider key does not decrypt with the configured key") from exc
        return plain.decode()


@dataclass(frozen=True, slots=True)
class ProviderKeyInfo:
    """What may be shown about a stored key: never the key itself."""

    id: str
    provider: str
    created_at: datetime


class ProviderKeyStore:
    """One key per (user, provider); storing another replaces it."""

    def __init__(self, db: Database, cipher: KeyCipher) -> None:
        self._db = db
        self._cipher = cipher

    async def put(self, user_id: str, *, provider: str, api_key: str) -> ProviderKeyInfo:
        provider = provider.strip().lower()
        api_key = api_key.strip()
        if not PROVIDER_PATTERN.match(provider):
            raise InvalidProviderKey("provider must be a short lowercase name, e.g. 'openai'")
        if not api_key or len(api_key) > MAX_API_KEY_CHARS:
            raise InvalidProviderKey("api_key must be 1 to 4096 characters")
        sealed = self._cipher.encrypt(api_key, user_id=user_id, provider=provider)
        async with self._db.session() as session, session.begin():
            await session.execute(
                delete(ProviderKey).where(
                    ProviderKey.user_id == user_id, ProviderKey.provider == provider
                )
            )
            row = ProviderKey(user_id=user_id, provider=provider, key_enc=sealed)
            session.add(row)
        return ProviderKeyInfo(id=row.id, provider=row.provider, created_at=row.created_at)

    async def list(self, user_id: str) -> list[ProviderKeyInfo]:
        async with self._db.session() as session:
            rows = await session.scalars(
                select(ProviderKey)
                .where(ProviderKey.user_id == user_id)
                .order_by(ProviderKey.provider)
            )
            return [
                ProviderKeyInfo(id=r.id, provider=r.provider, created_at=r.created_at) for r in rows
            ]

    async def delete(self, user_id: str, key_id: str) -> bool:
        """Return False if the user has no key with that id."""
        async with self._db.session() as session, session.begin():
            result = await session.execute(
                delete(ProviderKey).where(ProviderKey.id == key_id, ProviderKey.user_id == user_id)
            )
        return bool(getattr(result, "rowcount", 0))

    async def key_for(self, user_id: str, provider: str) -> str | None:
        """The user's decrypted key for ``provider``, or None."""
        async with self._db.session() as session:
            sealed = await session.scalar(
                select(ProviderKey.key_enc).where(
                    ProviderKey.user_id == user_id, ProviderKey.provider == provider
                )
            )
        if sealed is None:
            return None
        return self._cipher.decrypt(sealed, user_id=user_id, provider=provider)
