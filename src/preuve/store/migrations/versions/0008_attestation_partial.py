"""Attestations of a month so far (``preuve attest --partial``, the demo) are told apart from complete ones.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

A complete month's first attestation must still be issued and e-mailed by the monthly run when a partial one of
the same month exists, so the row says which it is. Rows issued before this revision are complete months (the
builder refused a month that had not ended), hence the default.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attestation") as batch:
        batch.add_column(sa.Column("partial", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("attestation") as batch:
        batch.drop_column("partial")
