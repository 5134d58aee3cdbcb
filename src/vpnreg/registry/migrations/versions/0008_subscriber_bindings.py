"""Subscriber-bound registrations, their bindings, protocol scope and RADIUS clients (issue 17).

`applications` gains `bound_to` ('prefixes' for every existing row) and `protocols` ([] = any);
new tables `bindings` (addresses an ISP reports for a subscriber) and `radius_clients`.

On SQLite the two columns are added with ALTER TABLE ADD COLUMN (the CHECK inline), not in
batch mode: a batch rebuild drops the old `applications` table, and with foreign keys on that
drop would cascade into reviews, documents and claims.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BOUND_TO_CHECK = "bound_to IN ('prefixes', 'subscriber')"


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if _sqlite():
        op.execute(
            "ALTER TABLE applications ADD COLUMN bound_to VARCHAR(16) DEFAULT 'prefixes' "
            f"NOT NULL CONSTRAINT ck_applications_bound_to CHECK ({_BOUND_TO_CHECK})"
        )
        op.execute("ALTER TABLE applications ADD COLUMN protocols JSON DEFAULT '[]' NOT NULL")
    else:
        op.add_column(
            "applications",
            sa.Column("bound_to", sa.String(16), server_default="prefixes", nullable=False),
        )
        op.add_column(
            "applications",
            sa.Column("protocols", sa.JSON(), server_default="[]", nullable=False),
        )
        op.create_check_constraint(
            op.f("ck_applications_bound_to"), "applications", _BOUND_TO_CHECK
        )
    op.create_index(
        "ix_applications_isp_id_subscriber_id", "applications", ["isp_id", "subscriber_id"]
    )
    op.create_table(
        "bindings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("range_start", sa.String(length=32), nullable=False),
        sa.Column("range_end", sa.String(length=32), nullable=False),
        sa.Column("port_lo", sa.Integer(), nullable=True),
        sa.Column("port_hi", sa.Integer(), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["isp_id"], ["isps.id"], name=op.f("fk_bindings_isp_id_isps")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bindings")),
        sa.UniqueConstraint(
            "isp_id", "subscriber_id", "session_id", name=op.f("uq_bindings_isp_id")
        ),
    )
    op.create_index(op.f("ix_bindings_range_start"), "bindings", ["range_start"])
    op.create_index(op.f("ix_bindings_valid_until"), "bindings", ["valid_until"])
    op.create_table(
        "radius_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("secret", sa.String(length=256), nullable=False),
        sa.Column(
            "subscriber_attribute",
            sa.String(length=64),
            server_default="User-Name",
            nullable=False,
        ),
        sa.Column("ports_attribute", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["isp_id"], ["isps.id"], name=op.f("fk_radius_clients_isp_id_isps")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_radius_clients")),
        sa.UniqueConstraint("address", name=op.f("uq_radius_clients_address")),
    )
    op.create_index(op.f("ix_radius_clients_isp_id"), "radius_clients", ["isp_id"])


def downgrade() -> None:
    # Subscriber-bound registrations have no prefixes: without bound_to they would read as
    # prefix-bound registrations of nothing. Refuse rather than delete registrations.
    bound = op.get_bind().execute(
        sa.text("SELECT count(*) FROM applications WHERE bound_to = 'subscriber'")
    )
    count = bound.scalar_one()
    if count:
        raise RuntimeError(
            f"cannot downgrade below 0008: {count} subscriber-bound application(s) exist, "
            "which the older schema cannot hold"
        )
    op.drop_index(op.f("ix_radius_clients_isp_id"), table_name="radius_clients")
    op.drop_table("radius_clients")
    op.drop_index(op.f("ix_bindings_valid_until"), table_name="bindings")
    op.drop_index(op.f("ix_bindings_range_start"), table_name="bindings")
    op.drop_table("bindings")
    op.drop_index("ix_applications_isp_id_subscriber_id", table_name="applications")
    if not _sqlite():
        op.drop_constraint(op.f("ck_applications_bound_to"), "applications", type_="check")
    op.drop_column("applications", "protocols")
    op.drop_column("applications", "bound_to")
