"""Provider keys sealed with versioned keys: ``provider_keys.key_id`` names the sealing key.

Rows already stored keep ``key_id`` NULL (the single-key format); they stay readable with
``VIBECODE_LLM__KEY_ENCRYPTION_KEY`` and ``vibecode secrets rotate`` re-seals them.

Revision ID: 0006
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("provider_keys") as batch:
        batch.add_column(sa.Column("key_id", sa.String(length=40), nullable=True))
        batch.create_index(op.f("ix_provider_keys_key_id"), ["key_id"], unique=False)


def downgrade() -> None:
    # Rows sealed in the versioned format would no longer open with the single key: rotate
    # them back (or delete them) before downgrading.
    with op.batch_alter_table("provider_keys") as batch:
        batch.drop_index(op.f("ix_provider_keys_key_id"))
        batch.drop_column("key_id")
