"""Initial schema: clients, targets, probes, snapshots seen, drill runs with their findings and commands.

Revision ID: 0001
Revises:
Create Date: 2024-11-27

Written by hand to match preuve.store.models; tests/integration/test_store.py checks that
alembic.autogenerate.compare_metadata finds no difference on SQLite and PostgreSQL. Storage types only
(no application types) so that this revision keeps its meaning when the models change.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant(name: str, *, nullable: bool) -> sa.Column[object]:
    """A UTCDateTime column: timestamptz on PostgreSQL, UTC text on SQLite."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "client",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("language", sa.String(), nullable=False),
        sa.Column("policy", sa.String(), nullable=False),
        _instant("created_at", nullable=False),
        _instant("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_client"),
    )

    op.create_table(
        "target",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("ref", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("location", sa.String(), nullable=False),
        sa.Column("media", sa.String(), nullable=False),
        sa.Column("repository", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=True),
        _instant("created_at", nullable=False),
        _instant("updated_at", nullable=False),
        _instant("removed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_target"),
        sa.ForeignKeyConstraint(["client_id"], ["client.id"], name="fk_target_client_id_client"),
        sa.UniqueConstraint("ref", name="uq_target_ref"),
    )
    op.create_index("ix_target_client_id", "target", ["client_id"])

    op.create_table(
        "probe",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        _instant("started_at", nullable=False),
        _instant("finished_at", nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("failure_class", sa.String(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("reachable", sa.Boolean(), nullable=True),
        sa.Column("credentials_ok", sa.Boolean(), nullable=True),
        sa.Column("repository_opens", sa.Boolean(), nullable=True),
        sa.Column("repository_id", sa.String(), nullable=True),
        sa.Column("snapshot_count", sa.Integer(), nullable=False),
        sa.Column("newest_snapshot_id", sa.String(), nullable=True),
        _instant("newest_snapshot_time", nullable=True),
        sa.Column("restic_version", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("preuve_version", sa.String(), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_probe"),
        sa.ForeignKeyConstraint(["target_id"], ["target.id"], name="fk_probe_target_id_target"),
    )
    op.create_index("ix_probe_target_id", "probe", ["target_id"])

    op.create_table(
        "snapshotseen",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.String(), nullable=False),
        sa.Column("short_id", sa.String(), nullable=False),
        _instant("time", nullable=False),
        sa.Column("hostname", sa.String(), nullable=False),
        sa.Column("username", sa.String(), nullable=False),
        sa.Column("paths", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("tree", sa.String(), nullable=False),
        sa.Column("parent", sa.String(), nullable=True),
        _instant("first_seen_at", nullable=False),
        _instant("last_seen_at", nullable=False),
        _instant("gone_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_snapshotseen"),
        sa.ForeignKeyConstraint(["target_id"], ["target.id"], name="fk_snapshotseen_target_id_target"),
        sa.UniqueConstraint("target_id", "snapshot_id", name="uq_snapshotseen_target_id_snapshot_id"),
    )

    op.create_table(
        "drillrun",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        _instant("requested_at", nullable=False),
        _instant("started_at", nullable=True),
        _instant("finished_at", nullable=True),
        sa.Column("failure_class", sa.String(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("snapshot_id", sa.String(), nullable=True),
        _instant("snapshot_time", nullable=True),
        # Counts and sizes: BIGINT, a repository easily holds more than 2 GiB.
        sa.Column("files_in_snapshot", sa.BigInteger(), nullable=True),
        sa.Column("bytes_in_snapshot", sa.BigInteger(), nullable=True),
        sa.Column("files_checked", sa.BigInteger(), nullable=True),
        sa.Column("files_changed_since_snapshot", sa.BigInteger(), nullable=True),
        sa.Column("bytes_restored", sa.BigInteger(), nullable=True),
        sa.Column("restore_s", sa.Float(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("estimated_full_restore_s", sa.Float(), nullable=True),
        sa.Column("canaries_checked", sa.Integer(), nullable=True),
        sa.Column("sample_budget_limited", sa.Boolean(), nullable=True),
        sa.Column("manifest_sha256", sa.String(), nullable=True),
        sa.Column("restic_version", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("preuve_version", sa.String(), nullable=False),
        sa.Column("worker", sa.String(), nullable=True),
        sa.Column("options", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drillrun"),
        sa.ForeignKeyConstraint(["target_id"], ["target.id"], name="fk_drillrun_target_id_target"),
    )
    op.create_index("ix_drillrun_target_id", "drillrun", ["target_id"])
    op.create_index("ix_drillrun_status", "drillrun", ["status"])
    op.create_index("ix_drillrun_requested_at", "drillrun", ["requested_at"])

    op.create_table(
        "drillfinding",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("drill_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("failure_class", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drillfinding"),
        sa.ForeignKeyConstraint(["drill_id"], ["drillrun.id"], name="fk_drillfinding_drill_id_drillrun"),
    )
    op.create_index("ix_drillfinding_drill_id", "drillfinding", ["drill_id"])

    op.create_table(
        "drillcommand",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("drill_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("argv", sa.Text(), nullable=False),
        _instant("started_at", nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("timed_out", sa.Boolean(), nullable=False),
        sa.Column("stdout", sa.Text(), nullable=False),
        sa.Column("stderr", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drillcommand"),
        sa.ForeignKeyConstraint(["drill_id"], ["drillrun.id"], name="fk_drillcommand_drill_id_drillrun"),
        sa.UniqueConstraint("drill_id", "seq", name="uq_drillcommand_drill_id_seq"),
    )
    op.create_index("ix_drillcommand_drill_id", "drillcommand", ["drill_id"])


def downgrade() -> None:
    for table in ("drillcommand", "drillfinding", "drillrun", "snapshotseen", "probe", "target", "client"):
        op.drop_table(table)
