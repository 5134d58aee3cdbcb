"""The publisher lease and the notification listener (ADR 0016) in one process: one holder at a
time, a lease lost with its connection passes to another, a listener whose connection is cut
reconnects and says so, and an audited change notifies only when it commits."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from tests.fixtures.postgres import PostgresServer
from vpnreg.clock import SystemClock
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.feed_signals import (
    CHANGED_CHANNEL,
    FEED_CHANNEL,
    FeedListener,
    connect_args,
)
from vpnreg.registry.services.feed_lease import (
    AdvisoryLease,
    FileLease,
    SoleLease,
    lease_for_url,
)

#: Functional deadline for a notification or a reconnection to arrive.
DEADLINE_S = 10.0


@pytest.fixture
def pg_db(pg_server: PostgresServer) -> Iterator[str]:
    name = pg_server.create_database("lease")
    try:
        url = pg_server.url(name)
        upgrade(url)
        yield url
    finally:
        pg_server.drop_database(name)


def _terminate(url: str, application_name: str) -> int:
    """Cut the server side of every session named `application_name`; how many were."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name AND datname = current_database()"
                    ),
                    {"name": application_name},
                ).all()
            )
    finally:
        engine.dispose()


def test_lease_kinds_follow_the_database_url(tmp_path: Path) -> None:
    assert isinstance(lease_for_url("sqlite://"), SoleLease)
    assert isinstance(lease_for_url("sqlite:///:memory:"), SoleLease)
    found = lease_for_url(f"sqlite:///{tmp_path / 'r.db'}")
    assert isinstance(found, FileLease) and found.path == tmp_path / "r.db.publisher.lock"
    assert isinstance(lease_for_url("postgresql+psycopg://u@/db?host=/tmp"), AdvisoryLease)
    with pytest.raises(ValueError, match="no publisher lease for the mysql backend"):
        lease_for_url("mysql://u@h/db")


def test_a_lock_file_has_one_holder_until_it_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "r.db.publisher.lock"
    first, second = FileLease(path), FileLease(path)
    try:
        assert first.acquire() and first.acquire()  # held, and still held
        assert not second.acquire()
        first.release()
        assert second.acquire()
        assert not first.acquire()
    finally:
        first.release()
        second.release()


def test_the_advisory_lock_passes_on_when_its_connection_is_cut(pg_db: str) -> None:
    first, second = AdvisoryLease(pg_db), AdvisoryLease(pg_db)
    try:
        assert first.acquire()
        assert not second.acquire()
        # Both connections carry this process's pid; cut the holder's alone by its backend.
        engine = make_engine(pg_db)
        with engine.connect() as conn:
            holder = conn.execute(
                text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND database = (SELECT oid FROM pg_database "
                    "                WHERE datname = current_database())"
                )
            ).scalar_one()
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})
        engine.dispose()
        assert not first.acquire()  # it notices its lease is gone (and the other's is not free)
        assert second.acquire()
        assert not first.acquire()
        second.release()
        assert first.acquire()
    finally:
        first.release()
        second.release()


def test_the_listener_hears_commits_only_and_reconnects_after_a_cut(pg_db: str) -> None:
    heard: queue.Queue[tuple[str, str]] = queue.Queue()
    listener = FeedListener(pg_db, lambda channel, payload: heard.put((channel, payload)))
    engine = make_engine(pg_db)
    sessions = make_session_factory(engine)
    try:
        assert listener.start()

        def audit(commit: bool) -> None:
            with sessions() as session:
                append_event(
                    session, time=SystemClock().now(), actor="cli:admin", action="test",
                    object_type="test", object_id=1,
                )  # fmt: skip
                if commit:
                    session.commit()
                else:
                    session.rollback()

        audit(commit=False)
        audit(commit=True)
        assert heard.get(timeout=DEADLINE_S) == (CHANGED_CHANNEL, "")
        time.sleep(0.5)
        assert heard.empty()  # the rolled-back change sent nothing

        assert _terminate(pg_db, "vpnreg feed listener") == 1
        assert heard.get(timeout=DEADLINE_S) == ("", "")  # reconnected: catch up once
        with psycopg.connect(**connect_args(pg_db), autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (FEED_CHANNEL, "s:7"))
        assert heard.get(timeout=DEADLINE_S) == (FEED_CHANNEL, "s:7")
    finally:
        listener.stop()
        engine.dispose()
