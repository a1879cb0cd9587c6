"""Two-factor authentication: TOTP (RFC 6238) enrolment, login checks and recovery codes.

The TOTP secret is sealed at rest with the versioned secrets cipher, bound to the user id.
A code is accepted once: the last accepted time step is stored and later codes must be newer,
so a code seen over someone's shoulder cannot be replayed within its 30-second window.
Recovery codes (60 bits each) are stored as SHA-256 hashes and consumed atomically.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import pyotp
from sqlalchemy import delete, select, update

from accounts.crypto import VersionedCipher
from accounts.errors import TotpInvalid, TotpRequired, TwoFactorStateError
from accounts.settings import AuthSettings
from state.db import Database
from state.models import RecoveryCode, User, new_id, utcnow

__all__ = ["TotpEnrolment", "TwoFactor", "hash_recovery_code"]

TOTP_PERIOD_S = 30
# Accept the previous and the next step too: clocks drift and people type slowly.
TOTP_WINDOW_STEPS = 1
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    secret: str
    provisioning_uri: str


def hash_recovery_code(user_id: str, code: str) -> str:
    normalized = code.strip().lower().replace("-", "").replace(" ", "")
    return hashlib.sha256(f"{user_id}\x00{normalized}".encode()).hexdigest()


def _new_recovery_code() -> str:
    chars = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(12))
    return f"{chars[:4]}-{chars[4:8]}-{chars[8:]}"


class TwoFactor:
    def __init__(self, db: Database, cipher: VersionedCipher, settings: AuthSettings) -> None:
        self._db = db
        self._cipher = cipher
        self._issuer = settings.totp_issuer
        self._recovery_count = settings.recovery_code_count

    @staticmethod
    def _aad(user_id: str) -> bytes:
        return f"totp\x00{user_id}".encode()

    async def setup(self, user_id: str) -> TotpEnrolment:
        """Start (or restart) enrolment with a fresh secret; refused while two-factor is on."""
        secret = pyotp.random_base32()
        async with self._db.session() as session, session.begin():
            user = await session.get(User, user_id)
            if user is None:
                raise TwoFactorStateError("No such account.")
            if user.totp_enabled_at is not None:
                raise TwoFactorStateError(
                    "Two-factor authentication is already on; disable it first."
                )
            user.totp_secret_enc = self._cipher.seal(secret.encode(), aad=self._aad(user_id))
            user.totp_last_step = None
            email = user.email
        uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=self._issuer)
        return TotpEnrolment(secret=secret, provisioning_uri=uri)

    async def enable(self, user_id: str, code: str) -> list[str]:
        """Turn two-factor on once ``code`` proves the authenticator works; return the recovery
        codes (shown once)."""
        async with self._db.session() as session, session.begin():
            user = await session.get(User, user_id)
            if user is None or user.totp_secret_enc is None:
                raise TwoFactorStateError("Call /api/auth/2fa/setup first.")
            if user.totp_enabled_at is not None:
                raise TwoFactorStateError("Two-factor authentication is already on.")
            step = self._matching_step(user, code)
            if step is None:
                raise TotpInvalid()
            user.totp_last_step = step
            user.totp_enabled_at = utcnow()
            codes = [_new_recovery_code() for _ in range(self._recovery_count)]
            await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
            for plain in codes:
                session.add(
                    RecoveryCode(
                        id=new_id(), user_id=user_id, code_hash=hash_recovery_code(user_id, plain)
                    )
                )
        return codes

    async def disable(
        self, user_id: str, *, totp_code: str | None, recovery_code: str | None
    ) -> None:
        """Turn two-factor off (the caller re-authenticated with the password already)."""
        await self.verify(user_id, totp_code=totp_code, recovery_code=recovery_code)
        async with self._db.session() as session, session.begin():
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(totp_secret_enc=None, totp_enabled_at=None, totp_last_step=None)
            )
            await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))

    async def verify(
        self, user_id: str, *, totp_code: str | None, recovery_code: str | None
    ) -> str:
        """Check the second factor of an account with two-factor on; return which one was used
        (``"totp"`` or ``"recovery_code"``). ``TotpRequired`` when none was sent."""
        if not totp_code and not recovery_code:
            raise TotpRequired()
        if totp_code:
            async with self._db.session() as session, session.begin():
                user = await session.get(User, user_id)
                if user is None or user.totp_enabled_at is None:
                    raise TwoFactorStateError("Two-factor authentication is off.")
                step = self._matching_step(user, totp_code)
                if step is None:
                    raise TotpInvalid()
                # Compare-and-set: of two concurrent logins with one code, one wins.
                claimed = await session.execute(
                    update(User)
                    .where(
                        User.id == user_id,
                        (User.totp_last_step.is_(None)) | (User.totp_last_step < step),
                    )
                    .values(totp_last_step=step)
                )
                if claimed.rowcount == 0:  # type: ignore[attr-defined]
                    raise TotpInvalid()
            return "totp"
        assert recovery_code is not None
        code_hash = hash_recovery_code(user_id, recovery_code)
        async with self._db.session() as session, session.begin():
            used = await session.execute(
                update(RecoveryCode)
                .where(
                    RecoveryCode.user_id == user_id,
                    RecoveryCode.code_hash == code_hash,
                    RecoveryCode.used_at.is_(None),
                )
                .values(used_at=utcnow())
            )
            if used.rowcount == 0:  # type: ignore[attr-defined]
                raise TotpInvalid("The recovery code is wrong or was already used.")
        return "recovery_code"

    async def remaining_recovery_codes(self, user_id: str) -> int:
        async with self._db.session() as session:
            rows = await session.scalars(
                select(RecoveryCode.id).where(
                    RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
                )
            )
            return len(list(rows))

    def _matching_step(self, user: User, code: str) -> int | None:
        """The time step ``code`` belongs to if it is valid and newer than the last one used."""
        if user.totp_secret_enc is None:
            return None
        code = code.strip().replace(" ", "")
        if not code.isdigit() or len(code) != 6:
            return None
        secret = self._cipher.open(user.totp_secret_enc, aad=self._aad(user.id)).decode()
        totp = pyotp.TOTP(secret, interval=TOTP_PERIOD_S)
        now_step = int(time.time()) // TOTP_PERIOD_S
        for step in range(now_step - TOTP_WINDOW_STEPS, now_step + TOTP_WINDOW_STEPS + 1):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                continue
            if secrets.compare_digest(totp.at(step * TOTP_PERIOD_S), code):
                return step
        return None

    async def reseal(self, user_id: str) -> bool:
        """Re-seal the TOTP secret with the newest key; return False if nothing changed."""
        async with self._db.session() as session, session.begin():
            user = await session.get(User, user_id)
            if user is None or user.totp_secret_enc is None:
                return False
            if not self._cipher.needs_reseal(user.totp_secret_enc):
                return False
            plain = self._cipher.open(user.totp_secret_enc, aad=self._aad(user_id))
            user.totp_secret_enc = self._cipher.seal(plain, aad=self._aad(user_id))
        return True
