"""The migrations create exactly what the models describe (both backends).

At 0002 the feed tables are compared (api_tokens gained columns in 0004); at the head api_tokens
is. (Other tables are compared by their owners' tests: on PostgreSQL `claims` has generated
columns the models leave out on purpose.)
"""

from __future__ import annotations

import datetime as dt

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from tests.registry.conftest import make_config
from vpnreg.registry import services
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.db import alembic_config, make_engine, make_session_factory, upgrade
from vpnreg.registry.models import Base, User
from vpnreg.registry.services.mode_changes import list_changes

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


def test_migration_0012_announces_the_mode_changes_the_audit_log_holds(fresh_url: str) -> None:
    upgrade(fresh_url, "0011")
    engine = make_engine(fresh_url)
    t0 = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)
    steps = [  # (actor, before, after) as set_mode audited them before reasons
        ("reg1", ("enforce", {}), ("enforce", {"wireguard": "dry-run"})),
        ("reg1", ("enforce", {"wireguard": "dry-run"}), ("enforce", {"wireguard": "dry-run"})),
        ("cli:admin", ("enforce", {"wireguard": "dry-run"}), ("dry-run", {})),
        ("reg1", ("dry-run", {}), ("dry-run", {"openvpn": "enforce"})),
    ]
    try:
        with make_session_factory(engine)() as session:
            session.add(User(username="reg1", password_hash="x", role="regulator", active=True,
                             created_at=t0))  # fmt: skip
            for n, (actor, (d0, p0), (d1, p1)) in enumerate(steps, start=1):
                append_event(
                    session, time=t0 + dt.timedelta(hours=n), actor=actor, action="feed.mode",
                    object_type="feed", object_id="s", before={"default": d0, "per_protocol": p0},
                    after={"default": d1, "per_protocol": p1, "serial": n + 1},
                )  # fmt: skip
            session.commit()
        upgrade(fresh_url)
        with make_session_factory(engine)() as session:
            changes = list_changes(session)
            national = f"replaced by change {changes[1].id}"
            assert [
                (c.protocol, str(c.from_mode), str(c.to_mode), c.actor_role, c.serial, c.ended_by)
                for c in changes
            ] == [
                ("openvpn", "dry-run", "enforce", "regulator", 5, None),
                (None, "enforce", "dry-run", "system", 4, None),
                ("wireguard", "enforce", "dry-run", "regulator", 2, national),
            ]
            assert all(c.reason.startswith("not recorded") for c in changes)
            assert changes[2].ended_at == t0 + dt.timedelta(hours=3)
            # the id sequence counted the copied rows: a new change gets a new id
            regulator = session.scalars(select(User)).one()
            services.set_mode(session, mode="enforce", reason="back to enforce", actor=regulator,
                              now=t0 + dt.timedelta(days=1), config=make_config())  # fmt: skip
            newest = list_changes(session)[0]
            assert newest.id > changes[0].id and newest.reason == "back to enforce"
            assert all(c.ended_at is not None for c in list_changes(session)[1:])
    finally:
        engine.dispose()
