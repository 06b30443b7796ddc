"""Live restore log and per-target lookups: drillcommand.running; indexes for the newest snapshot and drill per
target.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

``drillcommand.running`` marks the row of a restic command still running (the restore log written while the drill
runs); existing rows are complete, hence the default false. The first two indexes let the overview and the
metrics endpoint find each target's newest snapshot and newest drill of each kind with one index lookup per target,
instead of ranking a year of history on every reading; the third reads the failed drills of the last 30 days
without visiting the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("drillcommand", sa.Column("running", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_snapshotseen_target_id_time", "snapshotseen", ["target_id", "time"])
    op.create_index("ix_drillrun_target_id_kind_finished_at", "drillrun", ["target_id", "kind", "finished_at"])
    op.create_index("ix_drillrun_status_finished_at", "drillrun", ["status", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_drillrun_status_finished_at", table_name="drillrun")
    op.drop_index("ix_drillrun_target_id_kind_finished_at", table_name="drillrun")
    op.drop_index("ix_snapshotseen_target_id_time", table_name="snapshotseen")
    with op.batch_alter_table("drillcommand") as batch:
        batch.drop_column("running")
