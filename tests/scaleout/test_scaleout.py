"""The registry scales out (issue 18, ADR 0016): `vpnreg serve --workers N` and separate
`vpnreg serve` processes on one database, as real processes, on a real PostgreSQL and on SQLite.

Exactly one process publishes (the advisory lock, or the lock file on SQLite); a change made
through any process reaches the long polls held by every other; killing the publishing process
hands the feed to another within seconds. Where the servers check for changes only every 30 s,
an answer within DEADLINE_S can only have come through PostgreSQL's notifications.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.radius.test_radius_server import SECRET as RADIUS_SECRET
from tests.radius.test_radius_server import Radius
from tests.scaleout.cluster import (
    DEADLINE_S,
    Poll,
    Registry,
    advisory_holders,
    agreed_state,
    kill,
    long_poll_all,
    polls_on_every_worker,
    publisher_pid,
    report_binding,
    server,
)
from vpnreg.radius import VENDOR_DICTIONARY
from vpnreg.registry.db import make_engine

#: Real server processes.
pytestmark = pytest.mark.slow

#: Servers that look for changes this seldom can only learn of one sooner by a notification.
SELDOM_S = 30.0
#: Within this the publisher's lease passes to another process once its holder died (the
#: others try at every check, each second here).
TAKEOVER_S = 10.0


def assert_all_moved(
    answers: list[tuple[int, dict[str, object] | None, float]],
    before: tuple[str, int],
    changed_at: float,
) -> None:
    """Every long poll answered with a serial past `before`, within DEADLINE_S of the change."""
    for status, body, at in answers:
        assert status == 200 and body is not None, (status, body)
        assert body["session_id"] == before[0] and int(str(body["serial"])) > before[1], body
        assert at - changed_at < DEADLINE_S, at - changed_at


def test_a_change_through_one_server_reaches_the_long_polls_of_every_worker_of_another(
    pg_registry: Registry,
) -> None:
    """(a) `--workers 3` and a separate `vpnreg serve` on one PostgreSQL database: one lock
    holder among the four processes; a binding reported through the separate server reaches
    long polls held by each of the three workers through LISTEN/NOTIFY."""
    with (
        server(pg_registry, "workers", workers=3, check_interval_s=SELDOM_S) as many,
        server(pg_registry, "single", check_interval_s=SELDOM_S) as single,
    ):
        assert len(many.workers()) == 3
        polls = polls_on_every_worker(many, pg_registry.gateway_token)
        polls += [Poll(single, pg_registry.gateway_token) for _ in range(2)]
        state = agreed_state(polls)
        holder = publisher_pid(pg_registry.url)
        assert holder in [*many.workers(), single.process.pid]

        changed_at, answers = long_poll_all(
            polls, state, lambda: report_binding(single, pg_registry, "SUB-1", "192.0.2.7")
        )
        assert_all_moved(answers, state, changed_at)
        assert len({p.worker() for p in polls}) == 4  # three workers and the single server
        assert publisher_pid(pg_registry.url) == holder
        for poll in polls:
            poll.close()


def test_killing_the_publishing_worker_hands_the_feed_to_another(pg_registry: Registry) -> None:
    """(b) SIGKILL the process holding the lock: another takes it within seconds, the serve
    process forks a new worker, and a change made after the kill reaches every long poll."""
    with server(pg_registry, "workers", workers=3, check_interval_s=1.0) as many:
        holder = publisher_pid(pg_registry.url)
        assert holder in many.workers()
        kill(holder)

        deadline = time.monotonic() + TAKEOVER_S
        while (found := advisory_holders(pg_registry.url)) in ([], [f"vpnreg serve pid={holder}"]):
            assert time.monotonic() < deadline, "no process took the publisher's lock over"
            time.sleep(0.1)
        successor = publisher_pid(pg_registry.url)
        while len(many.workers()) < 3 or holder in many.workers():
            assert time.monotonic() < deadline, f"no worker forked in place: {many.workers()}"
            time.sleep(0.1)
        # one of the survivors, or the worker forked in place if its first check came first
        assert successor != holder and successor in many.workers(), found

        polls = polls_on_every_worker(many, pg_registry.gateway_token)
        state = agreed_state(polls)
        changed_at, answers = long_poll_all(
            polls, state, lambda: report_binding(many, pg_registry, "SUB-2", "192.0.2.8")
        )
        assert_all_moved(answers, state, changed_at)
        assert publisher_pid(pg_registry.url) == successor
        for poll in polls:
            poll.close()


def test_a_radius_binding_report_wakes_the_servers_through_notify(
    pg_registry: Registry,
) -> None:
    """(c) A report written by `vpnreg radius` (its own process) reaches long polls on both
    workers within DEADLINE_S while the servers check for changes only every 30 s: the
    notification woke the publisher, whose serial's notification woke the other worker."""
    if shutil.which("radclient") is None:
        pytest.fail("radclient not found: install the Debian package freeradius-utils")
    where = pg_registry.where / "radius"
    where.mkdir()
    (where / "dictionary").write_text(f"$INCLUDE {VENDOR_DICTIONARY}\n")
    engine = make_engine(pg_registry.url)
    radius = Radius(pg_registry.url, where, engine, {})
    try:
        radius.register_client()
        radius.start()
        with server(pg_registry, "workers", workers=2, check_interval_s=SELDOM_S) as many:
            polls = polls_on_every_worker(many, pg_registry.gateway_token)
            state = agreed_state(polls)

            def start_session() -> None:
                done = radius.radclient(
                    'Acct-Status-Type = Start, User-Name = "SUB-3", Acct-Session-Id = "r1", '
                    "Framed-IP-Address = 192.0.2.9",
                    secret=RADIUS_SECRET,
                )
                assert done.returncode == 0, done.stdout + done.stderr

            changed_at, answers = long_poll_all(polls, state, start_session)
            assert_all_moved(answers, state, changed_at)
            for poll in polls:
                poll.close()
    finally:
        if radius.proc is not None and radius.proc.poll() is None:
            radius.proc.terminate()
            radius.proc.wait(timeout=30)
        engine.dispose()


def test_sqlite_two_servers_one_publisher_changes_reach_both(sqlite_registry: Registry) -> None:
    """(d) SQLite: `--workers 2` and a separate server on one database file. One process holds
    the lock file (and wrote its pid in it); a change made through the separate server
    reaches the long polls of every process at their next check."""
    lock_file = Path(f"{sqlite_registry.where / 'registry.db'}.publisher.lock")
    with (
        server(sqlite_registry, "workers", workers=2, check_interval_s=1.0) as many,
        server(sqlite_registry, "single", check_interval_s=1.0) as single,
    ):
        processes = [*many.workers(), single.process.pid]
        assert len(processes) == 3
        holder = int(lock_file.read_text())
        assert holder in processes
        fd = os.open(lock_file, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):  # held: no second holder can take it
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)

        polls = polls_on_every_worker(many, sqlite_registry.gateway_token)
        polls += [Poll(single, sqlite_registry.gateway_token) for _ in range(2)]
        state = agreed_state(polls)
        through = many if holder == single.process.pid else single
        changed_at, answers = long_poll_all(
            polls, state, lambda: report_binding(through, sqlite_registry, "SUB-4", "192.0.2.10")
        )
        assert_all_moved(answers, state, changed_at)
        assert int(lock_file.read_text()) == holder
        for poll in polls:
            poll.close()


def test_stopping_the_serve_process_stops_its_workers(sqlite_registry: Registry) -> None:
    """SIGTERM to `vpnreg serve --workers 2` stops both workers and then itself (exit 0)."""
    with server(sqlite_registry, "workers", workers=2, check_interval_s=1.0) as many:
        workers = many.workers()
        assert len(workers) == 2
        many.process.terminate()
        assert many.process.wait(timeout=30) == 0
        for pid in workers:
            assert not _alive(pid), pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for every purpose but its exit status
    status = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    return not status.stdout.strip().startswith("Z")
