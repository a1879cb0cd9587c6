"""Users' own provider API keys ("bring your own key"), encrypted at rest, never returned.

Sealed with the versioned cipher of ``accounts.crypto`` (AES-256-GCM; the first key seals, every
configured key opens), the same keys and the same rotation as workspace secrets: put a new key
first, deploy, run ``vibecode secrets rotate`` (which re-seals these rows too), drop the old key.
The user id and provider are the associated data, so a ciphertext copied to another row or
user fails to open. ``key_id`` on the row names the sealing key so rotation finds what is left.

Rows stored before versioned keys (revision 0006) have no ``key_id`` and the older format
``nonce || ciphertext`` under the single ``key_encryption_key``; they stay readable while that
key is configured, and rotation re-seals them in the versioned format.
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
from sqlalchemy import delete, or_, select

from accounts.crypto import VersionedCipher
from accounts.errors import SecretUndecryptable
from serve_apps.llm_router.errors import InvalidProviderKey
from serve_apps.llm_router.settings import LLMSettings
from state.db import Database
from state.models import ProviderKey, new_id, utcnow

__all__ = [
    "LEGACY_KEY_ID",
    "LegacyKeyCipher",
    "ProviderKeyInfo",
    "ProviderKeyStore",
    "derive_key_encryption_key",
    "open_provider_key_store",
    "provider_key_cipher",
]

NONCE_BYTES = 12
PROVIDER_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
MAX_API_KEY_CHARS = 4096
ROTATE_BATCH = 200
# The id under which the single pre-0006 key also takes part in the versioned cipher.
LEGACY_KEY_ID = "llm-kek"


def derive_key_encryption_key(secret: str) -> SecretStr:
    """A 32-byte key (base64) derived from another secret, e.g. the JWT secret in development."""
    digest = hashlib.sha256(b"vibecode/provider-keys/v1\x00" + secret.encode()).digest()
    return SecretStr(base64.b64encode(digest).decode())


class LegacyKeyCipher:
    """Opens rows of the pre-0006 format: AES-256-GCM over ``nonce || ciphertext``."""

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
        """The old format (kept so tests and migrations can make legacy rows)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), self._aad(user_id, provider))
        return nonce + sealed

    def decrypt(self, blob: bytes, *, user_id: str, provider: str) -> str:
        """``SecretUndecryptable`` when ``blob`` was not sealed with this key for this row."""
        try:
            plain = self._aead.decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], self._aad(user_id, provider)
            )
        except InvalidTag as exc:
            raise SecretUndecryptable("provider key does not open with the legacy key") from exc
        return plain.decode()


def provider_key_cipher(settings: LLMSettings) -> VersionedCipher | None:
    """The versioned keys, plus the legacy single key (under ``LEGACY_KEY_ID``) when set.

    None when neither is configured: stored provider keys are then off.
    """
    specs = [key.get_secret_value() for key in settings.key_encryption_keys]
    legacy = settings.key_encryption_key
    if legacy is not None and not any(spec.startswith(f"{LEGACY_KEY_ID}:") for spec in specs):
        specs.append(f"{LEGACY_KEY_ID}:{legacy.get_secret_value()}")
    return VersionedCipher(specs) if specs else None


def open_provider_key_store(db: Database, settings: LLMSettings) -> ProviderKeyStore | None:
    """The store the settings describe, or None when no key is configured."""
    cipher = provider_key_cipher(settings)
    if cipher is None:
        return None
    legacy = settings.key_encryption_key
    return ProviderKeyStore(
        db, cipher, legacy=LegacyKeyCipher(legacy) if legacy is not None else None
    )


@dataclass(frozen=True, slots=True)
class ProviderKeyInfo:
    """What may be shown about a stored key: never the key itself."""

    id: str
    provider: str
    created_at: datetime


class ProviderKeyStore:
    """One key per (user, provider); storing another replaces it."""

    def __init__(
        self, db: Database, cipher: VersionedCipher, *, legacy: LegacyKeyCipher | None = None
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._legacy = legacy

    @staticmethod
    def _aad(user_id: str, provider: str) -> bytes:
        return f"provider-key\x00{user_id}\x00{provider}".encode()

    async def put(self, user_id: str, *, provider: str, api_key: str) -> ProviderKeyInfo:
        provider = provider.strip().lower()
        api_key = api_key.strip()
        if not PROVIDER_PATTERN.match(provider):
            raise InvalidProviderKey("provider must be a short lowercase name, e.g. 'openai'")
        if not api_key or len(api_key) > MAX_API_KEY_CHARS:
            raise InvalidProviderKey("api_key must be 1 to 4096 characters")
        sealed = self._cipher.seal(api_key.encode(), aad=self._aad(user_id, provider))
        async with self._db.session() as session, session.begin():
            row = await session.scalar(
                select(ProviderKey)
                .where(ProviderKey.user_id == user_id, ProviderKey.provider == provider)
                .with_for_update()
            )
            if row is None:
                row = ProviderKey(id=new_id(), user_id=user_id, provider=provider)
                session.add(row)
            row.key_enc = sealed
            row.key_id = self._cipher.current_key_id
            row.created_at = utcnow()
            await session.flush()
            info = ProviderKeyInfo(id=row.id, provider=row.provider, created_at=row.created_at)
        return info

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
        """The user's decrypted key for ``provider``, or None.

        ``SecretUndecryptable`` when no configured key opens it (a key dropped too early).
        """
        async with self._db.session() as session:
            row = (
                await session.execute(
                    select(ProviderKey.key_enc, ProviderKey.key_id).where(
                        ProviderKey.user_id == user_id, ProviderKey.provider == provider
                    )
                )
            ).first()
        if row is None:
            return None
        sealed, key_id = row
        return self._open(sealed, key_id=key_id, user_id=user_id, provider=provider)

    def _open(self, sealed: bytes, *, key_id: str | None, user_id: str, provider: str) -> str:
        if key_id is not None:
            return self._cipher.open(sealed, aad=self._aad(user_id, provider)).decode()
        if self._legacy is None:
            raise SecretUndecryptable(
                "provider key stored before versioned keys; set VIBECODE_LLM__KEY_ENCRYPTION_KEY "
                "to the old key and run `vibecode secrets rotate`"
            )
        return self._legacy.decrypt(sealed, user_id=user_id, provider=provider)

    async def rotate(self) -> int:
        """Re-seal every row not sealed with the newest key (legacy rows included); return how
        many changed.

        Safe while the platform runs: each row is re-sealed in its own short transaction and
        only if it still holds the ciphertext that was read (a concurrent ``put`` wins).
        """
        current = self._cipher.current_key_id
        stale = or_(ProviderKey.key_id.is_(None), ProviderKey.key_id != current)
        changed = 0
        while True:
            async with self._db.session() as session:
                rows = list(
                    await session.scalars(select(ProviderKey).where(stale).limit(ROTATE_BATCH))
                )
            if not rows:
                return changed
            for row in rows:
                plain = self._open(
                    row.key_enc, key_id=row.key_id, user_id=row.user_id, provider=row.provider
                )
                resealed = self._cipher.seal(
                    plain.encode(), aad=self._aad(row.user_id, row.provider)
                )
                async with self._db.session() as session, session.begin():
                    fresh = await session.get(ProviderKey, row.id, with_for_update=True)
                    if fresh is None or fresh.key_enc != row.key_enc:
                        continue
                    fresh.key_enc = resealed
                    fresh.key_id = current
                    changed += 1
