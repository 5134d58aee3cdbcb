"""Audit transparency (ADR 0008): hash version and salt on audit events, signed checkpoints.

Existing events keep hash version 1 (the column's default) and no salt; events appended from
now on are version 2. The checkpoints table is append-only, as the audit log is.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN on both backends (no table rebuild): the append-only triggers stay, and
    # the default fills the existing rows without an UPDATE they would refuse. A downgrade
    # keeps the columns (see there), so they may be here already.
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("audit_log")}
    if "hash_version" not in present:
        op.add_column(
            "audit_log",
            sa.Column("hash_version", sa.Integer(), server_default="1", nullable=False),
        )
    if "salt" not in present:
        op.add_column("audit_log", sa.Column("salt", sa.LargeBinary(), nullable=True))
    op.create_table(
        "audit_checkpoints",
        sa.Column("number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("head", sa.String(length=64), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_audit_checkpoints")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_checkpoints is append-only: % refused', TG_OP;
            END;
            $$
            """
        )
        for name, when in (("update", "UPDATE"), ("delete", "DELETE")):
            op.execute(
                f"CREATE TRIGGER audit_checkpoints_no_{name} BEFORE {when} ON audit_checkpoints "
                "FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only()"
            )
        op.execute(
            "CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_append_only()"
        )
    else:
        for name, when in (("update", "UPDATE"), ("delete", "DELETE")):
            op.execute(
                f"CREATE TRIGGER audit_checkpoints_no_{name} BEFORE {when} ON audit_checkpoints "
                f"BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only: {when} refused'); "
                "END"
            )


def downgrade() -> None:
    # The hash_version and salt columns stay: dropping them would destroy what version 2 events
    # are hashed with, for good. Code of revision 0007 ignores them (and cannot verify version 2
    # events); upgrading again finds them and goes on where it left off.
    op.drop_table("audit_checkpoints")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_checkpoints_append_only()")
