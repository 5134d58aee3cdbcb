"""The migrations on an empty database, on both backends."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from vpnreg.clock import FrozenClock
from vpnreg.registry.db import (
    alembic_config,
    current_revision,
    make_engine,
    make_session_factory,
    upgrade,
)
from vpnreg.registry.models import Base, User
from vpnreg.registry.services.tokens import authenticate_token, create_token, token_hash

EXPECTED_TABLES = {t.name for t in Base.metadata.sorted_tables}
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_the_migrations_form_one_chain() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1
    assert HEAD is not None


def test_upgrade_empty_database_creates_every_table(fresh_url: str) -> None:
    assert current_revision(fresh_url) is None
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert tables >= EXPECTED_TABLES | {"alembic_version"}
        with engine.connect() as conn:
            head = conn.execute(text("SELECT id, seq, hash FROM audit_head")).all()
        assert [tuple(r) for r in head] == [(1, 0, "")]
    finally:
        engine.dispose()
    assert current_revision(fresh_url) == HEAD
    upgrade(fresh_url)  # a second upgrade is a no-op
    assert current_revision(fresh_url) == HEAD


def test_postgresql_claims_have_generated_range_columns_and_exclusion(pg_url: str) -> None:
    upgrade(pg_url)
    engine = make_engine(pg_url)
    try:
        columns = {c["name"]: c for c in inspect(engine).get_columns("claims")}
        assert str(columns["prefix"]["type"]).upper() == "CIDR"
        assert str(columns["valid_during"]["type"]).upper() == "TSTZRANGE"
        with engine.connect() as conn:
            kinds = conn.execute(
                text(
                    "SELECT conname FROM pg_constraint WHERE conrelid = 'claims'::regclass "
                    "AND contype = 'x'"
                )
            ).scalars()
            assert list(kinds) == ["claims_no_overlap"]
    finally:
        engine.dispose()


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"])
def test_audit_log_refuses_update_and_delete(fresh_url: str, statement: str) -> None:
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_log (seq, time, actor, action, object_type, object_id, "
                    "prev_hash, hash) VALUES (1, :t, 'a', 'b', 'c', '1', 'p', 'h')"
                ),
                {"t": "2026-01-15 09:00:00"},
            )
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT actor FROM audit_log")).scalars().all() == ["a"]
    finally:
        engine.dispose()


def test_0004_keeps_existing_tokens_and_its_downgrade_drops_user_bound_ones(
    fresh_url: str, clock: FrozenClock
) -> None:
    secret = "vpnreg_" + "a" * 43
    upgrade(fresh_url, "0003")
    engine = make_engine(fresh_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO api_tokens (name, role, token_hash, created_at, created_by) "
                    "VALUES ('gw', 'gateway', :h, :t, 'cli:admin')"
                ),
                {"h": token_hash(secret), "t": clock.now()},
            )
        upgrade(fresh_url)
        with make_session_factory(engine)() as session:
            found = authenticate_token(session, token=secret, now=clock.now())
            assert found is not None
            assert (found.role, found.user_id, found.expires_at) == ("gateway", None, None)
            user = User(
                username="noc", password_hash="x", role="isp", active=True, created_at=clock.now()
            )
            session.add(user)
            session.commit()
            create_token(session, name="noc", user_id=user.id, actor="cli:admin", now=clock.now())
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0003")
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT name, role FROM api_tokens")).all()
        assert [tuple(r) for r in rows] == [("gw", "gateway")]
        assert "user_id" not in {c["name"] for c in inspect(engine).get_columns("api_tokens")}
    finally:
        engine.dispose()
    assert current_revision(fresh_url) == "0003"


def _downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def test_0008_makes_existing_applications_prefix_bound_and_downgrades_cleanly(
    fresh_url: str, clock: FrozenClock
) -> None:
    upgrade(fresh_url, "0007")
    engine = make_engine(fresh_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO organisations (id, name, category, created_at) "
                    "VALUES (1, 'Org', 'bank', :t)"
                ),
                {"t": clock.now()},
            )
            conn.execute(
                text("INSERT INTO isps (id, name, created_at) VALUES (1, 'ISP', :t)"),
                {"t": clock.now()},
            )
            conn.execute(
                text(
                    "INSERT INTO applications (id, organisation_id, isp_id, category, state, "
                    "version, created_by, created_at, updated_at) "
                    "VALUES (1, 1, 1, 'bank', 'draft', 1, 'x', :t, :t)"
                ),
                {"t": clock.now()},
            )
            conn.execute(
                text(
                    "INSERT INTO reviews (application_id, actor, action, from_state, to_state, "
                    "created_at) VALUES (1, 'x', 'submit', 'draft', 'submitted', :t)"
                ),
                {"t": clock.now()},
            )
        upgrade(fresh_url)
        with engine.connect() as conn:
            row = conn.execute(text("SELECT bound_to, protocols FROM applications")).one()
        assert row[0] == "prefixes"
        assert row[1] in ([], "[]")
        tables = set(inspect(engine).get_table_names())
        assert {"bindings", "radius_clients"} <= tables
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text("UPDATE applications SET bound_to = 'somewhere'"))
        _downgrade(engine, "0007")
        tables = set(inspect(engine).get_table_names())
        assert not {"bindings", "radius_clients"} & tables
        columns = {c["name"] for c in inspect(engine).get_columns("applications")}
        assert not {"bound_to", "protocols"} & columns
        with engine.connect() as conn:
            # The application and its history survive the round trip (nothing cascaded).
            assert conn.execute(text("SELECT count(*) FROM reviews")).scalar_one() == 1
            assert conn.execute(text("SELECT count(*) FROM applications")).scalar_one() == 1
        upgrade(fresh_url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE applications SET bound_to = 'subscriber'"))
        with pytest.raises(RuntimeError, match="1 subscriber-bound application"):
            _downgrade(engine, "0007")
    finally:
        engine.dispose()
    assert current_revision(fresh_url) == HEAD


@pytest.mark.parametrize(
    "statement",
    ["UPDATE gateway_reports SET mode = 'dry-run'", "UPDATE gateway_report_counts SET flows = 9"],
)
def test_gateway_reports_refuse_update(fresh_url: str, statement: str) -> None:
    """Reports are append-only (ADR 0010): a stored report or count never changes."""
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO gateway_reports (id, report_id, gateway_id, token_name, created, "
                    "received_at, mode) VALUES (1, :r, 'gw', 'gw', :t, :t, 'nftables')"
                ),
                {"r": "a" * 32, "t": "2026-01-15 09:00:00"},
            )
            conn.execute(
                text(
                    "INSERT INTO gateway_report_counts (report_id, hour, protocol, verdict, "
                    "flows) VALUES (1, :t, 'wireguard', 'not-domestic', 1)"
                ),
                {"t": "2026-01-15 09:00:00"},
            )
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT mode FROM gateway_reports")).scalars().all() == [
                "nftables"
            ]
            assert conn.execute(text("SELECT flows FROM gateway_report_counts")).scalar() == 1
    finally:
        engine.dispose()
