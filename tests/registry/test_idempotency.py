"""Idempotency keys on creating an application (services.idempotency), on SQLite and PostgreSQL:
a repeat returns what the first request made, another body under the same key is refused, keys
are per caller and expire, and racing repeats make one application."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.registry.conftest import World, build_world
from tests.registry.flow import draft
from vpnreg.clock import FrozenClock
from vpnreg.registry import services
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.errors import ValidationFailed
from vpnreg.registry.models import Application, AuditLogRow
from vpnreg.registry.services.idempotency import KEY_LIFETIME

PREFIXES = [("192.0.2.0/28", ["198.51.100.10/32"])]


def create(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    now: dt.datetime,
    key: str | None,
    prefixes: list[tuple[str, list[str]]] = PREFIXES,
    *,
    bank: bool = False,
) -> services.ApplicationView:
    return draft(session, world, config, now, prefixes, bank=bank, idempotency_key=key)


def count(session: Session, model: type[Application] | type[AuditLogRow]) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_a_repeat_returns_the_first_application_and_records_nothing_more(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    first = create(session, world, config, clock.now(), "create-1")
    apps, events = count(session, Application), count(session, AuditLogRow)
    again = create(session, world, config, clock.now() + dt.timedelta(minutes=5), "create-1")
    assert again.id == first.id and again.tracking_number == first.tracking_number
    assert (count(session, Application), count(session, AuditLogRow)) == (apps, events)
    # Without a key, the same body is a new application (keys are optional).
    assert create(session, world, config, clock.now(), None).id != first.id


def test_the_same_key_with_another_body_is_refused(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    create(session, world, config, clock.now(), "create-2")
    apps = count(session, Application)
    with pytest.raises(ValidationFailed) as refused:
        create(session, world, config, clock.now(), "create-2", [("192.0.2.64/28", [])])
    assert refused.value.errors[0].code == "reused"
    assert count(session, Application) == apps


def test_keys_are_per_caller_and_expire(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    mine = create(session, world, config, clock.now(), "shared-key")
    theirs = create(session, world, config, clock.now(), "shared-key", bank=True)
    assert theirs.id != mine.id
    later = clock.now() + KEY_LIFETIME
    assert create(session, world, config, later, "shared-key").id != mine.id


@pytest.mark.parametrize("key", ["", "with space", "x" * 129, "naïve", "tab\there"])
def test_a_malformed_key_is_refused_before_anything_is_made(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock, key: str
) -> None:
    apps = count(session, Application)
    with pytest.raises(ValidationFailed) as refused:
        create(session, world, config, clock.now(), key)
    assert refused.value.errors[0].field == "Idempotency-Key"
    assert count(session, Application) == apps


def test_racing_repeats_make_one_application(
    fresh_url: str, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    factory = make_session_factory(engine)
    try:
        with factory() as session:
            world = build_world(session, clock.now(), config)
            session.commit()
        made: list[int] = []
        go = threading.Barrier(12)

        def attempt() -> None:
            with factory() as session:
                go.wait()
                made.append(create(session, world, config, clock.now(), "race").id)

        threads = [threading.Thread(target=attempt) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with factory() as session:
            stored = count(session, Application)
    finally:
        engine.dispose()
    assert len(made) == 12 and len(set(made)) == 1
    assert stored == 1
