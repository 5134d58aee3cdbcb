"""Bindings remember the audit event of the report that last changed them (issue 17's churn),
and their start is indexed (the publisher also looks for bindings that began since it last ran).

The feed publisher then recomputes the entries of only the subscribers whose bindings changed
since its last publish (`changed_seq` past the audit sequence it published at), instead of the
whole allowlist. Rows stored before this revision keep NULL: the next publish after an upgrade
is a full one, which reads every row.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bindings") as batch:
        batch.add_column(sa.Column("changed_seq", sa.BigInteger(), nullable=True))
        batch.create_index(batch.f("ix_bindings_changed_seq"), ["changed_seq"], unique=False)
        batch.create_index(batch.f("ix_bindings_valid_from"), ["valid_from"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("bindings") as batch:
        batch.drop_index(batch.f("ix_bindings_valid_from"))
        batch.drop_index(batch.f("ix_bindings_changed_seq"))
        batch.drop_column("changed_seq")
