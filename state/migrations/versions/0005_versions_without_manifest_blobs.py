"""Versions without manifest blobs: a version's file set lives in the database.

A write used to put a second blob per version, the version's full file set (its "manifest"),
and fsync it. The database already holds everything that blob held: ``file_entries`` is the
head's file set (updated in the version's own transaction) and every version's
``version_files`` rows are its complete change set, so replaying them gives any version's file
set. New versions therefore store no manifest (``versions.manifest_sha256`` NULL).

Existing versions need no data migration: their ``version_files`` rows were always written with
the version, so they replay to exactly the file sets of their manifest blobs. The column stays
(nullable) so that purging a workspace still deletes the manifest blobs older versions name.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.alter_column("manifest_sha256", existing_type=sa.String(length=64), nullable=True)


def downgrade() -> None:
    # Only possible while every version still has a manifest blob, i.e. none was made since the
    # upgrade (the code before this revision needs one per version): otherwise this fails on the
    # NULLs, and the database stays as it is.
    with op.batch_alter_table("versions") as batch:
        batch.alter_column("manifest_sha256", existing_type=sa.String(length=64), nullable=False)
