"""The public reads from a PostgreSQL streaming replica (VPNREG_DATABASE_READ_URL, ADR 0017).

A primary and a hot standby streaming from it (`pg_replica_pair`): with replay paused on the
replica, a change made on the primary is visible to whoever reads the primary and not to
whoever reads the replica, which shows which server answered. The public lookup (its SQL), the
status page and the statistics read the replica; writes and everything a signed-in caller does
use the primary; the lookup index (ADR 0014) is built from the primary like the feed it
indexes. With the replica stopped the primary stands in, and the reads return to the replica
once it is back. (tests/test_settings.py: the settings refuse a replica that cannot be one.)
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from tests.api.harness import START, Api, build_api
from tests.fixtures.postgres import REPLAY_DEADLINE_S, ReplicaPair
from vpnreg.registry.read_replica import READ_APPLICATION_NAME, ReplicaDatabase
from vpnreg.web.app import create_app

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def api(pg_replica_pair: ReplicaPair, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API over a database of the primary, with the same database on the replica as its
    read replica (the app is not started: no feed publishes, so the lookup is its SQL)."""
    name = pg_replica_pair.primary.create_database("replica")
    primary_url, replica_url = pg_replica_pair.urls(name)
    built = build_api(primary_url, tmp_path_factory.mktemp("data"), read_url=replica_url)
    try:
        yield built
    finally:
        built.app.state.read_database.dispose()
        built.app.state.database.dispose()
        built.app.state.feed.close()
        for client in {id(c): c for c in built.clients.values()}.values():
            client.close()
        pg_replica_pair.primary.drop_database(name)


@pytest.fixture
def pair(pg_replica_pair: ReplicaPair) -> Iterator[ReplicaPair]:
    """The pair, caught up before the test and replaying again after it, whatever happened."""
    pg_replica_pair.wait_replayed()
    try:
        yield pg_replica_pair
    finally:
        pg_replica_pair.resume_replay()


def _registered(api: Api, prefix: str) -> dict[str, object]:
    """A registration of `prefix` approved through the API (every step a write on the primary)."""
    created = api.create("ali", [prefix])
    for who, action in (("ali", "submit"), ("noc", "verify"), ("pasha", "endorse"),
                        ("reg1", "approve")):  # fmt: skip
        api.step(who, created["id"], action)
    return created


def _eventually(check: Callable[[], bool], what: str) -> None:
    """Wait for `check` to hold: the replica applies what it received within the deadline."""
    give_up = time.monotonic() + REPLAY_DEADLINE_S
    while not check():
        if time.monotonic() > give_up:
            pytest.fail(f"{what}: not within {REPLAY_DEADLINE_S} s")
        time.sleep(0.05)


def _read_sessions(pair: ReplicaPair, database: str) -> int:
    """The app's read connections to `database` open on the replica (pg_stat_activity there)."""
    with pair.replica.admin() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (database, READ_APPLICATION_NAME),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _database_name(api: Api) -> str:
    name = make_url(api.url).database
    assert name is not None
    return name


def test_a_public_lookup_is_served_by_the_replica_and_shows_a_change_once_it_is_replayed(
    api: Api, pair: ReplicaPair
) -> None:
    public = api.client("public")
    pair.pause_replay()
    _registered(api, "203.0.113.0/28")

    # the approval is on the primary: the regulator (signed in, so on the primary) sees it ...
    regulator = api.client("reg1").get("/api/v1/lookup", params={"ip": "203.0.113.5"})
    assert regulator.status_code == 200 and regulator.json()["registered"] is True
    # ... the public lookup does not: its query ran on the replica, which has not applied it
    answer = public.get("/api/v1/ip/203.0.113.5")
    assert answer.status_code == 404 and answer.json()["registered"] is False
    assert _read_sessions(pair, _database_name(api)) >= 1
    health = public.get("/healthz").json()["read_replica"]
    assert health == {"serving": "replica", "fallbacks": 0}

    pair.resume_replay()
    _eventually(
        lambda: public.get("/api/v1/ip/203.0.113.5").status_code == 200,
        "the public lookup shows the approval once the replica replayed it",
    )
    assert public.get("/api/v1/ip/203.0.113.5").json()["cidr0_cidrs"] == [
        {"v4prefix": "203.0.113.0", "length": 28}
    ]


def test_b_writes_and_signed_in_reads_use_the_primary_while_the_replica_lags(
    api: Api, pair: ReplicaPair
) -> None:
    pair.pause_replay()
    # every write of the review flow succeeds with the replica frozen: none of them touched it
    created = _registered(api, "203.0.113.16/28")
    tracking = str(created["tracking_number"])
    public, regulator = api.client("public"), api.client("reg1")

    assert public.get("/status", params={"tracking_number": tracking}).status_code == 404
    status = regulator.get("/status", params={"tracking_number": tracking})
    assert status.status_code == 200 and tracking in status.text

    assert "Not registered" in public.get("/lookup", params={"ip": "203.0.113.20"}).text
    signed_in = regulator.get("/lookup", params={"ip": "203.0.113.20"}).text
    assert "Registered prefix" in signed_in and "203.0.113.16/28" in signed_in

    # a signed-in caller's read-after-write of its own application, and of the statistics
    assert api.client("ali").get(f"/api/v1/applications/{created['id']}").json()["state"] == (
        "active"
    )
    counts = [regulator.get("/stats.json"), public.get("/stats.json")]
    assert counts[0].json() != counts[1].json()  # the public's figures lack the approval

    pair.resume_replay()
    pair.wait_replayed()
    assert public.get("/status", params={"tracking_number": tracking}).status_code == 200
    assert public.get("/stats.json").json() == regulator.get("/stats.json").json()


def test_the_index_answers_now_from_the_feed_while_sql_answers_from_the_lagging_replica(
    api: Api, pair: ReplicaPair
) -> None:
    # an app of its own that is started, so its feed publishes and the lookup uses the index
    app = create_app(api.app.state.settings, clock=api.clock)
    try:
        with TestClient(app) as client:
            pair.pause_replay()
            _registered(api, "203.0.113.48/28")  # made through the other app: the feed's
            # one-second check finds it, and the index is built from the primary
            _eventually(
                lambda: client.get("/api/v1/ip/203.0.113.49").status_code == 200,
                "the lookup index holds the approval after the next publish",
            )
            # the same question with a moment is SQL's, on the replica: not there yet
            at = START.astimezone(dt.UTC).isoformat()
            lagging = client.get("/api/v1/ip/203.0.113.49", params={"at": at})
            assert lagging.status_code == 404
            pair.resume_replay()
            _eventually(
                lambda: client.get("/api/v1/ip/203.0.113.49", params={"at": at}).status_code == 200,
                "the lookup at a moment shows the approval once replayed",
            )
    finally:
        app.state.read_database.dispose()
        app.state.database.dispose()
        app.state.feed.close()


def test_c_with_the_replica_stopped_the_primary_answers_the_public_reads_until_it_is_back(
    api: Api, pair: ReplicaPair, caplog: pytest.LogCaptureFixture
) -> None:
    _registered(api, "203.0.113.32/28")
    pair.wait_replayed()
    replica_url = api.app.state.settings.database_read_url
    reads = ReplicaDatabase(replica_url, primary_url=api.url, retry_s=0.2)
    app = create_app(api.app.state.settings, clock=api.clock, read_database=reads)
    client = TestClient(app, raise_server_exceptions=False)
    try:
        assert client.get("/api/v1/ip/203.0.113.33").status_code == 200  # a pooled connection
        assert reads.health.status().serving == "replica"
        caplog.set_level(logging.WARNING, logger="vpnreg.registry.read_replica")
        pair.replica.stop()
        try:
            answer = client.get("/api/v1/ip/203.0.113.33")
            assert answer.status_code == 200 and answer.json()["registered"] is True
            assert client.get("/stats").status_code == 200
            assert client.get("/transparency/mode-changes").status_code == 200
            health = client.get("/healthz").json()["read_replica"]
            assert health["serving"] == "primary" and health["fallbacks"] >= 1
            assert reads.health.status().last_error  # the replica's refusal, for the log
            assert any("read replica unreachable" in r.getMessage() for r in caplog.records)
            # the primary standing in is read-only for these sessions too: a stray write fails
            with (
                reads.session() as session,
                pytest.raises(DBAPIError, match="read-only transaction"),
            ):
                session.execute(text("CREATE TABLE stray (id integer)"))
        finally:
            pair.replica.start()

        def back_on_the_replica() -> bool:
            assert client.get("/api/v1/ip/203.0.113.33").status_code == 200
            return reads.health.status().serving == "replica"

        _eventually(back_on_the_replica, "the reads return to the replica once it is back")
        assert reads.health.status().last_error is None
        assert client.get("/healthz").json()["read_replica"]["serving"] == "replica"
    finally:
        client.close()
        reads.dispose()
        app.state.database.dispose()
        app.state.feed.close()


def test_the_replica_sessions_are_read_only(api: Api, pair: ReplicaPair) -> None:
    reads: ReplicaDatabase = api.app.state.read_database
    with reads.session() as session:
        assert session.execute(text("SHOW default_transaction_read_only")).scalar() == "on"
        assert session.execute(text("SELECT pg_is_in_recovery()")).scalar() is True
        with pytest.raises(DBAPIError, match="read-only transaction"):
            session.execute(text("CREATE TABLE stray (id integer)"))
