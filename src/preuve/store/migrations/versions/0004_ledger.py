"""The ledger: every recorded result appended to its client's hash chain.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-06

A new table only; existing results are not back-filled (a chain starts with the first result recorded after the
upgrade, and says so by its genesis entry's prev_hash of 64 zeros).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledgerentry",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("ref_table", sa.String(), nullable=True),
        sa.Column("ref_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(), nullable=False),
        sa.Column("entry_hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledgerentry"),
        sa.UniqueConstraint("client_id", "seq", name="uq_ledgerentry_client_id_seq"),
    )
    op.create_index("ix_ledgerentry_client_id", "ledgerentry", ["client_id"])


def downgrade() -> None:
    op.drop_index("ix_ledgerentry_client_id", table_name="ledgerentry")
    op.drop_table("ledgerentry")
