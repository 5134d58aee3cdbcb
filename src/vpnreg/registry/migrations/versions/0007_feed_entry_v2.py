"""The feed moves to allowlist entry version 2 (ADR 0006): the stored version 1 feed is cleared.

The feed's rows hold encoded records; version 2 records differ in size and content, so a history
of version 1 records cannot continue. Clearing the three feed tables makes the next publish start
a new session, which gateways accept (ADR 0001: a new session whose creation time is not earlier
than the one they hold) and load as a snapshot. Nothing else is lost: the feed is derived from the
registrations.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FEED_TABLES = ("feed_deltas", "feed_entries", "feed_state")


def upgrade() -> None:
    for table in _FEED_TABLES:
        op.execute(f"DELETE FROM {table}")


def downgrade() -> None:
    # Version 1 code cannot read version 2 records either: it too starts a new session.
    for table in _FEED_TABLES:
        op.execute(f"DELETE FROM {table}")
