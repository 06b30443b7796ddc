"""Facts for policy rules: snapshot sizes, file counts and changes (measured by probes); integrity subsets.

Revision ID: 0002
Revises: 0001
Create Date: 2024-12-09

Only nullable columns are added: existing rows read as "not measured". SQLite adds and (from 3.35) drops columns
in place; rebuilding drillrun instead would trip the foreign keys of its findings and commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SNAPSHOT_COLUMNS = ("size_bytes", "file_count", "changed_files", "stats_at")


def upgrade() -> None:
    with op.batch_alter_table("snapshotseen") as batch:
        batch.add_column(sa.Column("size_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("file_count", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("changed_files", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("stats_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("drillrun") as batch:
        batch.add_column(sa.Column("subset", sa.String(), nullable=True))


def _recreate() -> Literal["auto", "never"]:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and (bind.dialect.server_version_info or (0,)) < (3, 35):
        return "auto"  # no ALTER TABLE ... DROP COLUMN before SQLite 3.35: copy the table instead
    return "never"


def downgrade() -> None:
    with op.batch_alter_table("drillrun", recreate=_recreate()) as batch:
        batch.drop_column("subset")
    with op.batch_alter_table("snapshotseen", recreate=_recreate()) as batch:
        for name in reversed(_SNAPSHOT_COLUMNS):
            batch.drop_column(name)
