"""Mode changes (ADR 0012): every change of the feed's enforcement mode, with its reason, start,
planned end (a trial) and actual end, for the public announcement page and the trial revert.

Changes made before this migration are taken from their "feed.mode" audit events (read only;
the audit log is not touched): the protocol is the one whose override changed, or none for the
national switch; they carry no reason ("not recorded") and no planned end; a change to the same
mode is no change and is left out.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

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
    _backfill()


#: The reason shown for a change made before reasons were recorded.
NOT_RECORDED = "not recorded (made before mode changes gave reasons)"

_audit = sa.table(
    "audit_log",
    sa.column("seq", sa.BigInteger()),
    sa.column("time", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("before", sa.JSON()),
    sa.column("after", sa.JSON()),
)
_users = sa.table("users", sa.column("username", sa.String()), sa.column("role", sa.String()))
_changes = sa.table(
    "mode_changes",
    sa.column("id", sa.Integer()),
    sa.column("protocol", sa.String()),
    sa.column("from_mode", sa.String()),
    sa.column("to_mode", sa.String()),
    sa.column("before", sa.JSON()),
    sa.column("reason", sa.Text()),
    sa.column("actor_role", sa.String()),
    sa.column("started_at", sa.DateTime(timezone=True)),
    sa.column("serial", sa.BigInteger()),
    sa.column("ended_at", sa.DateTime(timezone=True)),
    sa.column("ended_by", sa.String()),
)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _which(before: dict[str, Any], after: dict[str, Any]) -> tuple[str | None, str, str] | None:
    """(protocol or None, from, to) of one old change; None when nothing changed."""
    old, new = before.get("per_protocol") or {}, after.get("per_protocol") or {}
    if not new and (old or before["default"] != after["default"]):
        return None, before["default"], after["default"]
    changed = [p for p, m in new.items() if old.get(p) != m]
    if len(changed) != 1:
        return None
    protocol = changed[0]
    return protocol, old.get(protocol, before["default"]), new[protocol]


def _backfill() -> None:
    bind = op.get_bind()
    roles = dict(bind.execute(sa.select(_users.c.username, _users.c.role)).all())
    events = bind.execute(
        sa.select(_audit.c.time, _audit.c.actor, _audit.c.before, _audit.c.after)
        .where(_audit.c.action == "feed.mode")
        .order_by(_audit.c.seq)
    ).all()
    open_changes: dict[int, str | None] = {}
    for time, actor, before_raw, after_raw in events:
        before, after = _json(before_raw), _json(after_raw)
        if not isinstance(before, dict) or not isinstance(after, dict):
            continue
        found = _which(before, after)
        if found is None:
            continue
        protocol, from_mode, to_mode = found
        # no explicit id: PostgreSQL's sequence must count these rows too
        new_id = bind.execute(
            _changes.insert()
            .values(
                protocol=protocol,
                from_mode=from_mode,
                to_mode=to_mode,
                before={
                    "default": before["default"],
                    "per_protocol": before.get("per_protocol") or {},
                },
                reason=NOT_RECORDED,
                actor_role=roles.get(actor, "system"),
                started_at=time,
                serial=int(after.get("serial") or 0),
            )
            .returning(_changes.c.id)
        ).scalar_one()
        for old_id in [i for i, p in open_changes.items() if protocol is None or p == protocol]:
            bind.execute(
                _changes.update()
                .where(_changes.c.id == old_id)
                .values(ended_at=time, ended_by=f"replaced by change {new_id}")
            )
            del open_changes[old_id]
        open_changes[new_id] = protocol


def downgrade() -> None:
    op.drop_index("ix_mode_changes_open_trials", table_name="mode_changes")
    op.drop_table("mode_changes")
