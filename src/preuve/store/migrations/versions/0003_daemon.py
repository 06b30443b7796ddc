"""The daemon: queued drills' not-before time, repository locks, the scheduler lease, flips and alert deliveries.

Revision ID: 0003
Revises: 0002
Create Date: 2024-12-16

Storage types only, as in 0001. drillrun only gains a nullable column (existing drills read "claimable at once");
the other tables are new. APScheduler's own job table (apscheduler_jobs) is not part of this schema: APScheduler
creates and owns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant(name: str, *, nullable: bool) -> sa.Column[object]:
    """A UTCDateTime column: timestamptz on PostgreSQL, UTC text on SQLite."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("drillrun") as batch:
        batch.add_column(_instant("not_before", nullable=True))

    op.create_table(
        "repolock",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("purpose", sa.String(), nullable=False),
        _instant("acquired_at", nullable=False),
        _instant("lease_until", nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_repolock"),
    )

    op.create_table(
        "schedulerlease",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        _instant("acquired_at", nullable=False),
        _instant("lease_until", nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_schedulerlease"),
    )

    op.create_table(
        "flip",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("target_ref", sa.String(), nullable=True),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("old_state", sa.String(), nullable=True),
        sa.Column("new_state", sa.String(), nullable=False),
        _instant("at", nullable=False),
        sa.Column("summary", sa.String(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("reminder", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_flip"),
    )
    op.create_index("ix_flip_client_id", "flip", ["client_id"])
    op.create_index("ix_flip_subject", "flip", ["subject"])
    op.create_index("ix_flip_at", "flip", ["at"])

    op.create_table(
        "alertdelivery",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("flip_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("destination", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        _instant("next_attempt_at", nullable=True),
        _instant("sent_at", nullable=True),
        _instant("created_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alertdelivery"),
        sa.ForeignKeyConstraint(["flip_id"], ["flip.id"], name="fk_alertdelivery_flip_id_flip"),
    )
    op.create_index("ix_alertdelivery_flip_id", "alertdelivery", ["flip_id"])
    op.create_index("ix_alertdelivery_status", "alertdelivery", ["status"])


def _recreate() -> Literal["auto", "never"]:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and (bind.dialect.server_version_info or (0,)) < (3, 35):
        return "auto"  # no ALTER TABLE ... DROP COLUMN before SQLite 3.35: copy the table instead
    return "never"


def downgrade() -> None:
    op.drop_index("ix_alertdelivery_status", table_name="alertdelivery")
    op.drop_index("ix_alertdelivery_flip_id", table_name="alertdelivery")
    op.drop_table("alertdelivery")
    op.drop_index("ix_flip_at", table_name="flip")
    op.drop_index("ix_flip_subject", table_name="flip")
    op.drop_index("ix_flip_client_id", table_name="flip")
    op.drop_table("flip")
    op.drop_table("schedulerlease")
    op.drop_table("repolock")
    with op.batch_alter_table("drillrun", recreate=_recreate()) as batch:
        batch.drop_column("not_before")
