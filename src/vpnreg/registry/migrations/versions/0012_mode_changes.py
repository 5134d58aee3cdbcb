"""Mode changes (ADR 0012): every change of the feed's enforcement mode, with its reason, start,
planned end (a trial) and actual end, for the public announcement page and the trial revert.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mode_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(length=16), nullable=True),
        sa.Column("from_mode", sa.String(length=16), nullable=False),
        sa.Column("to_mode", sa.String(length=16), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor_role", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("planned_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mode_changes")),
    )
    op.create_index(
        "ix_mode_changes_open_trials", "mode_changes", ["ended_at", "planned_end"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_mode_changes_open_trials", table_name="mode_changes")
    op.drop_table("mode_changes")
