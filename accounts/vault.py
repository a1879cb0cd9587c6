"""Workspace environment secrets: sealed at rest, listed by name only, resolved for exec.

Values are sealed with the versioned cipher (``accounts.crypto``), bound to the workspace and
the name. They are never returned by the API after creation; ``resolve`` hands them to the
sandbox exec layer only for the names a command asks for. Every value seen by this process is
registered with the log redactor, so it never appears in a log line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from accounts.crypto import VersionedCipher
from accounts.errors import InvalidSecretName, SecretNotFound
from accounts.redaction import REDACTOR
from state.db import Database
from state.models import WorkspaceSecret, new_id, utcnow

__all__ = ["SECRET_NAME_PATTERN", "SecretInfo", "SecretsStore"]

# Environment-variable names: what a secret becomes inside the sandbox.
SECRET_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_SECRET_BYTES = 64 * 1024
RESERVED_NAMES = frozenset({"PATH", "HOME", "PWD", "LD_PRELOAD", "LD_LIBRARY_PATH", "SHELL"})
ROTATE_BATCH = 200


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What may be shown about a secret: never its value."""

    name: str
    created_at: datetime
    updated_at: datetime
    key_id: str


def check_name(name: str) -> str:
    if not SECRET_NAME_PATTERN.match(name) or name.upper() in RESERVED_NAMES:
        raise InvalidSecretName(
            "A secret name is an environment variable name ([A-Za-z_][A-Za-z0-9_]*, at most "
            "128 characters) and not one the sandbox sets itself."
        )
    return name


class SecretsStore:
    def __init__(self, db: Database, cipher: VersionedCipher) -> None:
        self._db = db
        self._cipher = cipher

    @staticmethod
    def _aad(workspace_id: str, name: str) -> bytes:
        return f"workspace-secret\x00{workspace_id}\x00{name}".encode()

    async def put(
        self, workspace_id: str, name: str, value: str, *, actor_id: str | None
    ) -> tuple[SecretInfo, bool]:
        """Create or replace; return the info and whether it was created."""
        check_name(name)
        raw = value.encode()
        if len(raw) > MAX_SECRET_BYTES:
            raise InvalidSecretName(f"A secret value must be at most {MAX_SECRET_BYTES} bytes.")
        REDACTOR.remember(value)
        sealed = self._cipher.seal(raw, aad=self._aad(workspace_id, name))
        now = utcnow()
        async with self._db.session() as session, session.begin():
            row = await session.scalar(
                select(WorkspaceSecret)
                .where(WorkspaceSecret.workspace_id == workspace_id, WorkspaceSecret.name == name)
                .with_for_update()
            )
            created = row is None
            if row is None:
                row = WorkspaceSecret(
                    id=new_id(),
                    workspace_id=workspace_id,
                    name=name,
                    created_by=actor_id,
                    created_at=now,
                )
                session.add(row)
            row.value_enc = sealed
            row.key_id = self._cipher.current_key_id
            row.updated_at = now
            await session.flush()
            info = SecretInfo(
                name=row.name, created_at=row.created_at, updated_at=now, key_id=row.key_id
            )
        return info, created

    async def list_secrets(self, workspace_id: str) -> list[SecretInfo]:
        async with self._db.session() as session:
            rows = await session.scalars(
                select(WorkspaceSecret)
                .where(WorkspaceSecret.workspace_id == workspace_id)
                .order_by(WorkspaceSecret.name)
            )
            return [
                SecretInfo(
                    name=row.name,
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                    key_id=row.key_id,
                )
                for row in rows
            ]

    async def delete(self, workspace_id: str, name: str) -> None:
        async with self._db.session() as session, session.begin():
            result = await session.execute(
                delete(WorkspaceSecret).where(
                    WorkspaceSecret.workspace_id == workspace_id, WorkspaceSecret.name == name
                )
            )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise SecretNotFound(f"No secret named {name[:128]!r} in this workspace.")

    async def resolve(self, workspace_id: str, names: list[str]) -> dict[str, str]:
        """The values of ``names`` (for injection into one command's environment).

        ``SecretNotFound`` names the first one missing: a command that asked for a secret must
        not silently run without it.
        """
        wanted = sorted({check_name(name) for name in names})
        if not wanted:
            return {}
        async with self._db.session() as session:
            rows = list(
                await session.scalars(
                    select(WorkspaceSecret).where(
                        WorkspaceSecret.workspace_id == workspace_id,
                        WorkspaceSecret.name.in_(wanted),
                    )
                )
            )
        values = {
            row.name: self._cipher.open(
                row.value_enc, aad=self._aad(workspace_id, row.name)
            ).decode()
            for row in rows
        }
        missing = [name for name in wanted if name not in values]
        if missing:
            raise SecretNotFound(f"No secret named {missing[0]!r} in this workspace.")
        for value in values.values():
            REDACTOR.remember(value)
        return values

    async def rotate(self) -> int:
        """Re-seal every row not sealed with the newest key; return how many changed.

        Safe while the platform runs: each row is re-sealed in its own short transaction and
        only if it still holds the ciphertext that was read (a concurrent ``put`` wins).
        """
        changed = 0
        while True:
            async with self._db.session() as session:
                rows = list(
                    await session.scalars(
                        select(WorkspaceSecret)
                        .where(WorkspaceSecret.key_id != self._cipher.current_key_id)
                        .limit(ROTATE_BATCH)
                    )
                )
            if not rows:
                return changed
            for row in rows:
                aad = self._aad(row.workspace_id, row.name)
                resealed = self._cipher.seal(self._cipher.open(row.value_enc, aad=aad), aad=aad)
                async with self._db.session() as session, session.begin():
                    current = await session.get(WorkspaceSecret, row.id, with_for_update=True)
                    if current is None or current.value_enc != row.value_enc:
                        continue
                    current.value_enc = resealed
                    current.key_id = self._cipher.current_key_id
                    changed += 1
