"""Gateway reports (ADR 0010): the reports gateways send and their hourly counts.

Both tables are append-only by design (the service only inserts); a trigger refuses UPDATE on
both backends. No audit event is written per report (see the ADR).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("gateway_reports", "gateway_report_counts")


def upgrade() -> None:
    op.create_table(
        "gateway_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.String(length=32), nullable=False),
        sa.Column("gateway_id", sa.String(length=100), nullable=False),
        sa.Column("token_name", sa.String(length=100), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("feed_session", sa.String(length=64), nullable=True),
        sa.Column("feed_serial", sa.BigInteger(), nullable=True),
        sa.Column("set_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_reports")),
        sa.UniqueConstraint("report_id", name=op.f("uq_gateway_reports_report_id")),
    )
    op.create_index(op.f("ix_gateway_reports_gateway_id"), "gateway_reports", ["gateway_id"])
    op.create_index(op.f("ix_gateway_reports_received_at"), "gateway_reports", ["received_at"])
    op.create_table(
        "gateway_report_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("registration_id", sa.BigInteger(), nullable=True),
        sa.Column("prefix", sa.String(length=64), nullable=True),
        sa.Column("flows", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["gateway_reports.id"],
            name=op.f("fk_gateway_report_counts_report_id_gateway_reports"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_report_counts")),
    )
    op.create_index(
        op.f("ix_gateway_report_counts_report_id"), "gateway_report_counts", ["report_id"]
    )
    op.create_index(op.f("ix_gateway_report_counts_hour"), "gateway_report_counts", ["hour"])
    op.create_index(
        "ix_gateway_report_counts_registration_hour",
        "gateway_report_counts",
        ["registration_id", "hour"],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION gateway_reports_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only: UPDATE refused', TG_TABLE_NAME;
            END;
            $$
            """
        )
        for table in _TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION gateway_reports_append_only()"
            )
    else:
        for table in _TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END"
            )


def downgrade() -> None:
    op.drop_table("gateway_report_counts")
    op.drop_table("gateway_reports")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION gateway_reports_append_only()")
