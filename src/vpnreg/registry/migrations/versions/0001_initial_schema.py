"""Initial schema: organisations, users, applications, claims and the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-01-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CATEGORY_CHECK = (
    "category IN ('software_house', 'call_centre', 'freelancer', 'bank', "
    "'foreign_mission', 'other')"
)


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_log_hash")),
    )
    op.create_table(
        "isps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_isps")),
        sa.UniqueConstraint("name", name=op.f("uq_isps_name")),
    )
    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("registration_number", sa.String(length=64), nullable=True),
        sa.Column("national_id_hash", sa.String(length=64), nullable=True),
        sa.Column("national_id_last4", sa.String(length=4), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            CATEGORY_CHECK,
            name=op.f("ck_organisations_category"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("name", name=op.f("uq_organisations_name")),
    )
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_organisations_national_id_hash"), ["national_id_hash"], unique=False
        )

    op.create_table(
        "sector_bodies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sector_bodies")),
        sa.UniqueConstraint("name", name=op.f("uq_sector_bodies_name")),
    )
    op.create_table(
        "sector_body_categories",
        sa.Column("sector_body_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.CheckConstraint(
            CATEGORY_CHECK,
            name=op.f("ck_sector_body_categories_category"),
        ),
        sa.ForeignKeyConstraint(
            ["sector_body_id"],
            ["sector_bodies.id"],
            name=op.f("fk_sector_body_categories_sector_body_id_sector_bodies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "sector_body_id", "category", name=op.f("pk_sector_body_categories")
        ),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("isp_id", sa.Integer(), nullable=True),
        sa.Column("sector_body_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["isp_id"], ["isps.id"], name=op.f("fk_users_isp_id_isps")),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_users_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["sector_body_id"],
            ["sector_bodies.id"],
            name=op.f("fk_users_sector_body_id_sector_bodies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "applications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tracking_number", sa.String(length=32), nullable=True),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("isp_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("subscriber_id", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("renews_id", sa.Integer(), nullable=True),
        sa.Column("rejected_from", sa.String(length=32), nullable=True),
        sa.Column("rejected_by", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["isp_id"], ["isps.id"], name=op.f("fk_applications_isp_id_isps")),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_applications_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["rejected_by"], ["users.id"], name=op.f("fk_applications_rejected_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["renews_id"], ["applications.id"], name=op.f("fk_applications_renews_id_applications")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
        sa.UniqueConstraint("tracking_number", name=op.f("uq_applications_tracking_number")),
    )
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_applications_isp_id"), ["isp_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_applications_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_applications_state"), ["state"], unique=False)

    op.create_table(
        "appeals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("filed_by", sa.String(length=100), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_appeals_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeals")),
    )
    with op.batch_alter_table("appeals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_appeals_application_id"), ["application_id"], unique=False
        )

    op.create_table(
        "application_prefixes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=64), nullable=False),
        sa.Column("range_start", sa.String(length=32), nullable=False),
        sa.Column("range_end", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_application_prefixes_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_prefixes")),
        sa.UniqueConstraint(
            "application_id", "position", name=op.f("uq_application_prefixes_application_id")
        ),
    )
    with op.batch_alter_table("application_prefixes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_application_prefixes_application_id"), ["application_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_application_prefixes_range_start"), ["range_start"], unique=False
        )

    op.create_table(
        "claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("prefix_text", sa.String(length=64), nullable=False),
        sa.Column("range_start", sa.String(length=32), nullable=False),
        sa.Column("range_end", sa.String(length=32), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_end", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_claims_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
    )
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_claims_application_id"), ["application_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_claims_range_start"), ["range_start"], unique=False)

    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=128), nullable=False),
        sa.Column("uploaded_by", sa.String(length=100), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_documents_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
    )
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_documents_application_id"), ["application_id"], unique=False
        )

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=32), nullable=False),
        sa.Column("to_state", sa.String(length=32), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_reviews_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_reviews_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reviews_application_id"), ["application_id"], unique=False
        )

    op.create_table(
        "peer_amendments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prefix_id", sa.Integer(), nullable=False),
        sa.Column("peers", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["prefix_id"],
            ["application_prefixes.id"],
            name=op.f("fk_peer_amendments_prefix_id_application_prefixes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_peer_amendments")),
    )
    with op.batch_alter_table("peer_amendments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_peer_amendments_prefix_id"), ["prefix_id"], unique=False
        )

    op.create_table(
        "prefix_peers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prefix_id", sa.Integer(), nullable=False),
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("range_start", sa.String(length=32), nullable=False),
        sa.Column("range_end", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["prefix_id"],
            ["application_prefixes.id"],
            name=op.f("fk_prefix_peers_prefix_id_application_prefixes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prefix_peers")),
    )
    with op.batch_alter_table("prefix_peers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prefix_peers_prefix_id"), ["prefix_id"], unique=False)

    # The chain head starts at seq 0 with no hash; the first event links to GENESIS_HASH.
    op.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '')")
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        _postgresql_only()
    else:
        _sqlite_only()


def _postgresql_only() -> None:
    # The database refuses overlapping claims: same address space over overlapping validity.
    # Both operator classes are in core PostgreSQL (no btree_gist needed).
    op.execute(
        "ALTER TABLE claims ADD COLUMN prefix cidr GENERATED ALWAYS AS (prefix_text::cidr) STORED"
    )
    op.execute(
        "ALTER TABLE claims ADD COLUMN valid_during tstzrange "
        "GENERATED ALWAYS AS (tstzrange(valid_from, valid_end, '[)')) STORED"
    )
    op.execute(
        "ALTER TABLE claims ADD CONSTRAINT claims_no_overlap "
        "EXCLUDE USING gist (prefix inet_ops WITH &&, valid_during WITH &&)"
    )
    op.execute(
        """
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
    )


def _sqlite_only() -> None:
    op.execute(
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE IF EXISTS claims")
        op.execute("DROP TABLE audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER audit_log_no_update")
        op.execute("DROP TRIGGER audit_log_no_delete")
    with op.batch_alter_table("prefix_peers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prefix_peers_prefix_id"))

    op.drop_table("prefix_peers")
    with op.batch_alter_table("peer_amendments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_peer_amendments_prefix_id"))

    op.drop_table("peer_amendments")
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reviews_application_id"))

    op.drop_table("reviews")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_application_id"))

    op.drop_table("documents")
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_claims_range_start"))
        batch_op.drop_index(batch_op.f("ix_claims_application_id"))

    op.execute("DROP TABLE IF EXISTS claims")
    with op.batch_alter_table("application_prefixes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_application_prefixes_range_start"))
        batch_op.drop_index(batch_op.f("ix_application_prefixes_application_id"))

    op.drop_table("application_prefixes")
    with op.batch_alter_table("appeals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appeals_application_id"))

    op.drop_table("appeals")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_applications_state"))
        batch_op.drop_index(batch_op.f("ix_applications_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_applications_isp_id"))

    op.drop_table("applications")
    op.drop_table("users")
    op.drop_table("sector_body_categories")
    op.drop_table("sector_bodies")
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organisations_national_id_hash"))

    op.drop_table("organisations")
    op.drop_table("isps")
    op.execute("DROP TABLE IF EXISTS audit_log")
    op.drop_table("audit_head")
