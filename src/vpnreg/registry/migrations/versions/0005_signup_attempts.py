"""Sign-up attempts per client address, for the sign-up throttle (a table of their own).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
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
        "signup_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_attempts")),
    )
    with op.batch_alter_table("signup_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_signup_attempts_address_attempted_at", ["address", "attempted_at"], unique=False
        )
    # Sign-ups used to be counted as sign-in failures of this pseudo-username.
    op.execute("DELETE FROM login_failures WHERE username = 'web:signup'")


def downgrade() -> None:
    with op.batch_alter_table("signup_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_signup_attempts_address_attempted_at")
    op.drop_table("signup_attempts")
