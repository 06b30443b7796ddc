"""Web console: users, browser sessions and API tokens (hashed secrets only).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

New tables only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _instant(name: str, *, nullable: bool) -> sa.Column[object]:
    """A UTCDateTime column: timestamptz on PostgreSQL, UTC text on SQLite."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "webuser",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("client_id", sa.String(), nullable=True),
        sa.Column("password_hash", sa.String(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        _instant("locked_until", nullable=True),
        _instant("created_at", nullable=False),
        _instant("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webuser"),
        sa.UniqueConstraint("name", name="uq_webuser_name"),
    )
    op.create_table(
        "websession",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _instant("created_at", nullable=False),
        _instant("expires_at", nullable=False),
        sa.Column("address", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_websession"),
        sa.ForeignKeyConstraint(["user_id"], ["webuser.id"], name="fk_websession_user_id_webuser"),
    )
    op.create_index("ix_websession_user_id", "websession", ["user_id"])
    op.create_table(
        "apitoken",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(), nullable=False),
        _instant("created_at", nullable=False),
        _instant("last_used_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_apitoken"),
        sa.ForeignKeyConstraint(["user_id"], ["webuser.id"], name="fk_apitoken_user_id_webuser"),
        sa.UniqueConstraint("token_hash", name="uq_apitoken_token_hash"),
    )
    op.create_index("ix_apitoken_user_id", "apitoken", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_apitoken_user_id", table_name="apitoken")
    op.drop_table("apitoken")
    op.drop_index("ix_websession_user_id", table_name="websession")
    op.drop_table("websession")
    op.drop_table("webuser")
