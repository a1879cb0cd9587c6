"""Authenticated encryption at rest with versioned keys (AES-256-GCM).

A sealed value is ``0x01 || len(key_id) || key_id || nonce(12) || ciphertext+tag``. The first
configured key seals; every configured key opens, so keys rotate without downtime: add a new key
in front, deploy, re-seal the rows (``vibecode secrets rotate``), then drop the old key.
Associated data binds a ciphertext to its row (e.g. workspace id and secret name), so a value
copied to another row does not open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from accounts.errors import SecretUndecryptable

__all__ = ["VersionedCipher", "derive_key_spec", "parse_key_spec"]

FORMAT_VERSION = 1
NONCE_BYTES = 12
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


def parse_key_spec(spec: str) -> tuple[str, bytes]:
    """``"id:base64key"`` -> (id, 32 raw bytes); ``ValueError`` names what is wrong."""
    key_id, sep, encoded = spec.strip().partition(":")
    if not sep or not KEY_ID_PATTERN.match(key_id):
        raise ValueError("a secrets key must look like 'id:base64key' (id: 1-40 of [A-Za-z0-9_.-])")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"secrets key {key_id!r} is not valid base64") from exc
    if len(raw) != 32:
        raise ValueError(f"secrets key {key_id!r} must decode to 32 bytes")
    return key_id, raw


def derive_key_spec(secret: str, *, key_id: str = "derived") -> str:
    """A key spec derived from another secret (development only: the JWT secret)."""
    digest = hashlib.sha256(b"vibecode/secrets/v1\x00" + secret.encode()).digest()
    return f"{key_id}:{base64.b64encode(digest).decode()}"


class VersionedCipher:
    """Seals with the newest key, opens with any configured one."""

    def __init__(self, specs: Sequence[str]) -> None:
        if not specs:
            raise ValueError("at least one secrets key is required")
        parsed = [parse_key_spec(spec) for spec in specs]
        ids = [key_id for key_id, _ in parsed]
        if len(set(ids)) != len(ids):
            raise ValueError("secrets key ids must be unique")
        self._keys = {key_id: AESGCM(raw) for key_id, raw in parsed}
        self.current_key_id = ids[0]

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def seal(self, plaintext: bytes, *, aad: bytes) -> bytes:
        key_id = self.current_key_id.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.current_key_id].encrypt(nonce, plaintext, aad)
        return bytes([FORMAT_VERSION, len(key_id)]) + key_id + nonce + sealed

    def open(self, blob: bytes, *, aad: bytes) -> bytes:
        """The plaintext; ``SecretUndecryptable`` for a foreign key, a tampered blob or row."""
        key_id = self.key_id_of(blob)
        aead = self._keys.get(key_id)
        if aead is None:
            raise SecretUndecryptable(f"sealed with key {key_id!r}, which is not configured")
        start = 2 + len(key_id)
        nonce, sealed = blob[start : start + NONCE_BYTES], blob[start + NONCE_BYTES :]
        try:
            return aead.decrypt(nonce, sealed, aad)
        except InvalidTag as exc:
            raise SecretUndecryptable("the sealed value was tampered with or moved") from exc

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        if len(blob) < 2 or blob[0] != FORMAT_VERSION or len(blob) < 2 + blob[1] + NONCE_BYTES:
            raise SecretUndecryptable("not a sealed value of a known format")
        return blob[2 : 2 + blob[1]].decode("ascii", errors="replace")

    def needs_reseal(self, blob: bytes) -> bool:
        return self.key_id_of(blob) != self.current_key_id
