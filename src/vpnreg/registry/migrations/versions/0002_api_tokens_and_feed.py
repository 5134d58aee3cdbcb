"""API tokens and the persisted allowlist feed history (state, current entries, deltas).

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "feed_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("set_hash", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.LargeBinary(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_deltas", sa.Integer(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_feed_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_state")),
    )
    op.create_table(
        "feed_entries",
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.Column("peers", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("record", name=op.f("pk_feed_entries")),
    )
    op.create_table(
        "feed_deltas",
        sa.Column("serial", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("previous_serial", sa.BigInteger(), nullable=False),
        sa.Column("added", sa.LargeBinary(), nullable=False),
        sa.Column("removed", sa.LargeBinary(), nullable=False),
        sa.Column("peers", sa.LargeBinary(), nullable=False),
        sa.Column("set_hash", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.LargeBinary(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_feed_deltas")),
    )


def downgrade() -> None:
    op.drop_table("feed_deltas")
    op.drop_table("feed_entries")
    op.drop_table("feed_state")
    op.drop_table("api_tokens")
