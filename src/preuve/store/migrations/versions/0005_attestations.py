"""Issued monthly attestations (one row per version), and the ledger indexes that building one reads through.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attestation",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("month", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(), nullable=False),
        sa.Column("verdict", sa.String(), nullable=False),
        sa.Column("restorable", sa.String(), nullable=False),
        sa.Column("keyid", sa.String(), nullable=False),
        sa.Column("pdf_path", sa.String(), nullable=False),
        sa.Column("statement_path", sa.String(), nullable=False),
        sa.Column("html_path", sa.String(), nullable=False),
        sa.Column("pdf_sha256", sa.String(), nullable=False),
        sa.Column("ledger_head", sa.String(), nullable=False),
        sa.Column("ledger_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("emailed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("email_error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_attestation"),
        sa.UniqueConstraint("client_id", "month", "version", name="uq_attestation_client_id_month_version"),
    )
    op.create_index("ix_attestation_client_id", "attestation", ["client_id"])
    op.create_index("ix_ledgerentry_client_id_recorded_at_seq", "ledgerentry", ["client_id", "recorded_at", "seq"])
    op.create_index("ix_ledgerentry_client_id_kind_seq", "ledgerentry", ["client_id", "kind", "seq"])


def downgrade() -> None:
    op.drop_index("ix_ledgerentry_client_id_kind_seq", table_name="ledgerentry")
    op.drop_index("ix_ledgerentry_client_id_recorded_at_seq", table_name="ledgerentry")
    op.drop_index("ix_attestation_client_id", table_name="attestation")
    op.drop_table("attestation")
