"""Migration 0002 creates exactly what the token and feed models describe (both backends)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from vpnreg.registry.db import make_engine, upgrade
from vpnreg.registry.models import Base

TABLES = {"api_tokens", "feed_state", "feed_entries", "feed_deltas"}


def test_migration_0002_matches_the_models(fresh_url: str) -> None:
    upgrade(fresh_url, "0002")
    engine = make_engine(fresh_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    # Other helpers' tables (0003) are not there yet at 0002; only ours must match exactly.
    ours = [d for d in diffs if any(f"'{table}'" in repr(d) for table in TABLES)]
    assert ours == []
