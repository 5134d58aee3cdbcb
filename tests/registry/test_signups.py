"""The sign-up throttle (vpnreg.registry.services.signups), on SQLite and PostgreSQL: attempts
per address within an hour, in their own table, untouched by sign-ins, and exact under races."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vpnreg.clock import FrozenClock
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.models import LoginFailure, SignupAttempt
from vpnreg.registry.services.sessions import clear_login_failures
from vpnreg.registry.services.signups import SIGNUP_WINDOW, admit_signup

LIMIT = 10
HERE = "198.51.100.7"


def test_the_limit_counts_every_attempt_per_address_within_the_window(
    session: Session, clock: FrozenClock
) -> None:
    start = clock.now()
    for i in range(LIMIT):
        now = start + dt.timedelta(minutes=i)
        assert not admit_signup(session, address=HERE, now=now, limit=LIMIT).blocked
    later = start + dt.timedelta(minutes=30)
    blocked = admit_signup(session, address=HERE, now=later, limit=LIMIT)
    assert blocked.blocked
    # Free again when the first attempt leaves the hour: 30 minutes from `later`.
    assert blocked.retry_after == 30 * 60
    assert not admit_signup(session, address="203.0.113.9", now=later, limit=LIMIT).blocked
    # Hammering while blocked does not push the wait further out.
    assert admit_signup(session, address=HERE, now=later, limit=LIMIT).retry_after == 30 * 60
    assert not admit_signup(session, address=HERE, now=start + SIGNUP_WINDOW, limit=LIMIT).blocked


def test_sign_ins_do_not_touch_the_sign_up_count(session: Session, clock: FrozenClock) -> None:
    now = clock.now()
    for _ in range(LIMIT):
        admit_signup(session, address=HERE, now=now, limit=LIMIT)
    # What a successful sign-in does, under any username (the old pseudo-username included).
    for username in ("web:signup", "alice"):
        clear_login_failures(session, username=username, address=HERE)
    assert admit_signup(session, address=HERE, now=now, limit=LIMIT).blocked
    failures = session.scalar(select(func.count()).select_from(LoginFailure))
    assert failures == 0


def test_racing_sign_ups_from_one_address_admit_at_most_the_limit(
    fresh_url: str, clock: FrozenClock
) -> None:
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    factory = make_session_factory(engine)
    admitted: list[bool] = []
    go = threading.Barrier(30)

    def attempt() -> None:
        with factory() as session:
            go.wait()
            throttle = admit_signup(session, address=HERE, now=clock.now(), limit=LIMIT)
            admitted.append(not throttle.blocked)

    try:
        threads = [threading.Thread(target=attempt) for _ in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with factory() as session:
            kept = session.scalar(select(func.count()).select_from(SignupAttempt))
    finally:
        engine.dispose()
    assert len(admitted) == 30
    # One at a time: exactly the room there was goes through, never more, never none.
    assert admitted.count(True) == LIMIT
    # Only the admitted attempts stay counted.
    assert kept == admitted.count(True)
