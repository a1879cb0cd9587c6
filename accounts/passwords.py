"""Password hashing with argon2id. Hashing is CPU-bound: callers run it off the event loop."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from accounts.errors import WeakPassword
from accounts.settings import AuthSettings

__all__ = ["PasswordPolicy"]

MAX_PASSWORD_CHARS = 1024


class PasswordPolicy:
    """Hashes, verifies and validates passwords according to the settings."""

    def __init__(self, settings: AuthSettings) -> None:
        self._min_length = settings.min_password_length
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        # Verified against when the account does not exist, so both paths cost the same.
        self._dummy_hash = self._hasher.hash("vibecode-timing-equaliser")

    def validate(self, password: str) -> None:
        """Raise WeakPassword when the password is unacceptable."""
        if len(password) < self._min_length:
            raise WeakPassword(f"The password must have at least {self._min_length} characters.")
        if len(password) > MAX_PASSWORD_CHARS:
            raise WeakPassword(f"The password must have at most {MAX_PASSWORD_CHARS} characters.")
        if password.strip() == "":
            raise WeakPassword("The password must not be blank.")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Return True when the password matches. A missing hash still costs one verification."""
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and (
                password_hash is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
