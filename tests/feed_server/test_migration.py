"""The migrations create exactly what the models describe (both backends).

At 0002 the feed tables are compared (api_tokens gained columns in 0004); at the head api_tokens
is. (Other tables are compared by their owners' tests: on PostgreSQL `claims` has generated
columns the models leave out on purpose.)
"""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from vpnreg.registry.db import alembic_config, make_engine, upgrade
from vpnreg.registry.models import Base

FEED_TABLES = {"feed_state", "feed_entries", "feed_deltas"}


def _diffs(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_migration_0002_matches_the_feed_models(fresh_url: str) -> None:
    upgrade(fresh_url, "0002")
    # Other helpers' tables (0003) are not there yet at 0002; only ours must match exactly.
    ours = [d for d in _diffs(fresh_url) if any(f"'{t}'" in repr(d) for t in FEED_TABLES)]
    assert ours == []


def test_migrations_at_head_match_the_token_model(fresh_url: str) -> None:
    upgrade(fresh_url)
    ours = [d for d in _diffs(fresh_url) if "api_tokens" in repr(d)]
    assert ours == []


def test_migration_0012_matches_the_mode_changes_model_and_downgrades(fresh_url: str) -> None:
    upgrade(fresh_url)
    assert [d for d in _diffs(fresh_url) if "mode_changes" in repr(d)] == []
    engine = make_engine(fresh_url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0011")
        assert "mode_changes" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()
