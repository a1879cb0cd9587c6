"""Email verification, password reset and change, and account deletion.

Links carry short signed tokens (HS256 with the deployment's key, their own audience, so they
are never accepted as access tokens and vice versa). A reset token names a fingerprint of the
password hash it was issued against: once the password changes, every outstanding reset link
stops working, which makes each one single-use without storing it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from urllib.parse import quote

import jwt
import structlog
from sqlalchemy import select, update

from accounts.errors import EmailTokenInvalid, InvalidCredentials, InvalidEmail
from accounts.mail import Mailer, OutgoingMail
from accounts.service import AccountService, TokenPair, normalize_email
from accounts.settings import AuthSettings
from state.db import Database
from state.models import ApiKey, Membership, RefreshToken, User, Workspace, utcnow
from state.threads import run_sync

__all__ = ["CredentialService"]

log = structlog.get_logger("accounts.credentials")

EMAIL_TOKEN_AUDIENCE = "vibecode-email"
ALGORITHM = "HS256"


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:24]


class CredentialService:
    def __init__(
        self, db: Database, settings: AuthSettings, accounts: AccountService, mailer: Mailer
    ) -> None:
        if settings.jwt_secret is None:
            raise ValueError("AuthSettings.jwt_secret must be resolved before use")
        self._db = db
        self._settings = settings
        self._accounts = accounts
        self._mailer = mailer
        self._key = settings.jwt_secret.get_secret_value()

    # -- tokens ---------------------------------------------------------------------------------

    def _issue(self, *, purpose: str, user_id: str, fingerprint: str, ttl_s: int) -> str:
        now = int(time.time())
        claims = {
            "sub": user_id,
            "aud": EMAIL_TOKEN_AUDIENCE,
            "iss": self._settings.jwt_issuer,
            "iat": now,
            "exp": now + ttl_s,
            "pur": purpose,
            "fp": fingerprint,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def _verify(self, token: str, *, purpose: str) -> tuple[str, str]:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=EMAIL_TOKEN_AUDIENCE,
                issuer=self._settings.jwt_issuer,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise EmailTokenInvalid() from exc
        if claims.get("pur") != purpose or not isinstance(claims.get("fp"), str):
            raise EmailTokenInvalid()
        return str(claims["sub"]), str(claims["fp"])

    def _link(self, path: str, token: str) -> str:
        return f"{self._settings.public_url.rstrip('/')}{path}?token={quote(token)}"

    # -- email verification ---------------------------------------------------------------------

    async def send_verification(self, user_id: str) -> bool:
        """Email a verification link; False when the address is verified already."""
        async with self._db.session() as session:
            user = await session.get(User, user_id)
        if user is None or user.deleted_at is not None or user.email_verified_at is not None:
            return False
        token = self._issue(
            purpose="verify",
            user_id=user.id,
            fingerprint=_fingerprint(user.email),
            ttl_s=self._settings.email_verification_ttl_s,
        )
        await self._mailer.send(
            OutgoingMail(
                to=user.email,
                subject="Confirm your email address",
                body=(
                    "Confirm your email address for Vibecode by opening this link:\n\n"
                    f"{self._link('/verify-email', token)}\n\n"
                    f"Or send this token to POST /api/auth/verify-email:\n{token}\n"
                ),
            )
        )
        return True

    async def verify_email(self, token: str) -> str:
        """Mark the address verified; return the user id."""
        user_id, fingerprint = self._verify(token, purpose="verify")
        async with self._db.session() as session, session.begin():
            user = await session.get(User, user_id)
            if user is None or user.deleted_at is not None:
                raise EmailTokenInvalid()
            if not secrets.compare_digest(_fingerprint(user.email), fingerprint):
                raise EmailTokenInvalid()
            if user.email_verified_at is None:
                user.email_verified_at = utcnow()
        await self._accounts.forget_user(user_id)
        return user_id

    # -- password reset -------------------------------------------------------------------------

    async def send_password_reset(self, email: str) -> str | None:
        """Email a reset link if an account has ``email``; return its id (None otherwise).

        Callers answer the same either way, so the route does not reveal who has an account.
        """
        try:
            address = normalize_email(email)
        except InvalidEmail:
            return None
        async with self._db.session() as session:
            user = await session.scalar(select(User).where(User.email == address))
        if user is None or user.deleted_at is not None:
            return None
        token = self._issue(
            purpose="reset",
            user_id=user.id,
            fingerprint=_fingerprint(f"{user.password_hash or ''}\x00{user.token_epoch}"),
            ttl_s=self._settings.password_reset_ttl_s,
        )
        await self._mailer.send(
            OutgoingMail(
                to=user.email,
                subject="Reset your password",
                body=(
                    "Someone asked to reset the password of your Vibecode account. If it was "
                    "you, open this link (valid for "
                    f"{self._settings.password_reset_ttl_s // 60} minutes):\n\n"
                    f"{self._link('/reset-password', token)}\n\n"
                    f"Or send this token to POST /api/auth/password-reset/confirm:\n{token}\n\n"
                    "If it was not you, ignore this message.\n"
                ),
            )
        )
        return user.id

    async def reset_password(self, token: str, new_password: str) -> str:
        """Set a new password from a reset link; every sign-in of the account ends."""
        user_id, fingerprint = self._verify(token, purpose="reset")
        self._accounts.passwords.validate(new_password)
        new_hash = await run_sync(self._accounts.passwords.hash, new_password)
        async with self._db.session() as session, session.begin():
            user = await session.get(User, user_id)
            if user is None or user.deleted_at is not None:
                raise EmailTokenInvalid()
            current = _fingerprint(f"{user.password_hash or ''}\x00{user.token_epoch}")
            if not secrets.compare_digest(current, fingerprint):
                raise EmailTokenInvalid()
            user.password_hash = new_hash
            # The link reached the mailbox: the address is proven as well.
            if user.email_verified_at is None:
                user.email_verified_at = utcnow()
        await self._accounts.revoke_other_sessions(user_id, keep=None)
        return user_id

    # -- password change ------------------------------------------------------------------------

    async def change_password(
        self, user_id: str, *, current_password: str, new_password: str, session_id: str | None
    ) -> TokenPair:
        """Re-authenticate with the current password, set the new one, end every other sign-in
        and return a fresh pair for the caller's own."""
        await self.reauthenticate(user_id, current_password)
        self._accounts.passwords.validate(new_password)
        new_hash = await run_sync(self._accounts.passwords.hash, new_password)
        async with self._db.session() as session, session.begin():
            await session.execute(
                update(User).where(User.id == user_id).values(password_hash=new_hash)
            )
        await self._accounts.revoke_other_sessions(user_id, keep=session_id)
        return await self._accounts.reissue_access(user_id, session_id)

    async def reauthenticate(self, user_id: str, password: str) -> None:
        """``InvalidCredentials`` unless ``password`` is the account's password."""
        async with self._db.session() as session:
            user = await session.get(User, user_id)
        stored = user.password_hash if user is not None else None
        matched = await run_sync(self._accounts.passwords.verify, stored, password)
        if user is None or not matched:
            raise InvalidCredentials("The current password is incorrect.")

    # -- account deletion -----------------------------------------------------------------------

    async def delete_account(self, user_id: str, *, password: str | None) -> list[str]:
        """Delete the account: credentials, sessions, keys, memberships; the workspaces it owns
        are soft-deleted (purged later). Return the ids of those workspaces.

        The row stays, anonymised, because versions and the audit log refer to it.
        """
        async with self._db.session() as session:
            user = await session.get(User, user_id)
        if user is None or user.deleted_at is not None:
            raise InvalidCredentials()
        if user.password_hash is not None:
            await self.reauthenticate(user_id, password or "")
        now = utcnow()
        async with self._db.session() as session, session.begin():
            owned = list(
                await session.scalars(
                    select(Workspace.id).where(
                        Workspace.owner_id == user_id, Workspace.deleted_at.is_(None)
                    )
                )
            )
            if owned:
                await session.execute(
                    update(Workspace)
                    .where(Workspace.id.in_(owned))
                    .values(deleted_at=now, updated_at=now)
                )
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            await session.execute(
                update(ApiKey)
                .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            memberships = await session.scalars(
                select(Membership).where(Membership.user_id == user_id, Membership.role != "owner")
            )
            for membership in memberships:
                await session.delete(membership)
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(
                    deleted_at=now,
                    email=f"deleted-{user_id}@deleted.invalid",
                    name="",
                    password_hash=None,
                    totp_secret_enc=None,
                    totp_enabled_at=None,
                    token_epoch=User.token_epoch + 1,
                )
            )
        await self._accounts.forget_user(user_id)
        log.info("account.deleted", user_id=user_id, workspaces=len(owned))
        return owned
