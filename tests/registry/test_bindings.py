"""Storing ISP binding events (services.bindings.report_events) on both backends."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.registry.conftest import World
from vpnreg.clock import FrozenClock
from vpnreg.core.bindings import BindingEvent, EventResult
from vpnreg.registry import services
from vpnreg.registry.errors import Forbidden, NotFound, ValidationFailed
from vpnreg.registry.models import AuditLogRow, Binding
from vpnreg.registry.services.bindings import report_events

STORED = EventResult.stored()


def ev(
    kind: str,
    subscriber: str = "SUB-1",
    session_id: str = "s1",
    address: str = "198.51.100.7",
    ports: tuple[int, int] | None = None,
    until: dt.datetime | None = None,
) -> BindingEvent:
    return BindingEvent(kind, subscriber, session_id, address, ports, until)


def report(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    now: dt.datetime,
    *events: BindingEvent,
) -> list[EventResult]:
    return report_events(
        session, actor=world.isp_user, isp_id=world.isp, events=list(events), now=now, config=config
    )


def rows(session: Session) -> list[Binding]:
    return list(session.scalars(select(Binding).order_by(Binding.id)))


def audit_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditLogRow)) or 0


def test_a_start_stores_a_binding_for_24_hours_and_one_audit_event(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    before = audit_count(session)
    now = clock.now()
    assert report(session, world, config, now, ev("start", ports=(1024, 2047))) == [STORED]
    [row] = rows(session)
    assert (row.isp_id, row.subscriber_id, row.session_id, row.address) == (
        world.isp,
        "SUB-1",
        "s1",
        "198.51.100.7/32",
    )
    assert (row.port_lo, row.port_hi, row.ended_at) == (1024, 2047, None)
    assert (row.valid_from, row.valid_until) == (now, now + dt.timedelta(hours=24))
    assert audit_count(session) == before + 1
    last = session.scalars(select(AuditLogRow).order_by(AuditLogRow.seq.desc())).first()
    assert last is not None
    assert (last.action, last.object_type, last.object_id, last.actor) == (
        "report_bindings",
        "isp",
        str(world.isp),
        "noc",
    )
    assert last.after["events"] == 1
    assert last.after["created"] == 1


def test_retransmissions_store_once_interim_extends_and_stop_ends_at_once(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    t0 = clock.now()
    start = ev("start", until=t0 + dt.timedelta(hours=1))
    assert report(session, world, config, t0, start, start) == [STORED, STORED]
    assert report(session, world, config, t0 + dt.timedelta(seconds=5), start) == [STORED]
    [row] = rows(session)
    assert row.valid_until == t0 + dt.timedelta(hours=1)

    t1 = t0 + dt.timedelta(minutes=30)
    assert report(session, world, config, t1, ev("interim")) == [STORED]
    session.refresh(row)
    assert row.valid_until == t1 + dt.timedelta(hours=24)
    # An interim with an earlier end never shortens the binding.
    assert report(session, world, config, t1, ev("interim", until=t1 + dt.timedelta(hours=1))) == [
        STORED
    ]
    session.refresh(row)
    assert row.valid_until == t1 + dt.timedelta(hours=24)

    t2 = t1 + dt.timedelta(minutes=10)
    assert report(session, world, config, t2, ev("stop")) == [STORED]
    session.refresh(row)
    assert row.ended_at == t2
    # A late start or interim of the stopped session, and a repeated stop, change nothing.
    t3 = t2 + dt.timedelta(minutes=1)
    assert report(session, world, config, t3, start, ev("interim"), ev("stop")) == [STORED] * 3
    session.refresh(row)
    assert (row.ended_at, row.valid_until) == (t2, t1 + dt.timedelta(hours=24))
    assert len(rows(session)) == 1


def test_a_later_overlapping_binding_of_another_subscriber_is_refused_the_earlier_stands(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    results = report(
        session,
        world,
        config,
        now,
        ev("start", "SUB-1", "a", ports=(1024, 2047)),
        ev("start", "SUB-2", "b", ports=(2048, 3071)),  # the next block: fine
        ev("start", "SUB-3", "c", ports=(2000, 2100)),  # overlaps both
        ev("start", "SUB-3", "d", address="198.51.100.0/24"),  # the whole /24: overlaps
        ev("start", "SUB-1", "e", ports=(1024, 2047)),  # the same subscriber again: fine
    )
    assert [r.status for r in results] == ["stored", "stored", "refused", "refused", "stored"]
    assert results[2].error is not None
    assert "overlaps a live binding of another subscriber" in results[2].error
    assert "SUB-1" not in results[2].error  # the other subscriber is not named
    assert [(r.subscriber_id, r.session_id) for r in rows(session)] == [
        ("SUB-1", "a"),
        ("SUB-2", "b"),
        ("SUB-1", "e"),
    ]
    # Once the earlier binding is stopped (or expired), the address is free again.
    later = now + dt.timedelta(minutes=1)
    assert report(session, world, config, later, ev("stop", "SUB-1", "a"), ev("stop", "SUB-1", "e"))
    assert report(session, world, config, later, ev("start", "SUB-3", "c", ports=(1500, 2000))) == [
        STORED
    ]
    expired = now + dt.timedelta(hours=25)
    assert report(
        session, world, config, expired, ev("start", "SUB-4", "f", ports=(2048, 3071))
    ) == [STORED]


def test_bad_events_are_refused_one_by_one_and_the_rest_stored(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    results = report(
        session,
        world,
        config,
        now,
        ev("start", address="10.0.0.1"),
        ev("start", "SUB-2", "x", ports=(5, 1)),
        ev("start", "SUB-3", "y"),
        ev("interim", "SUB-3", "y", address="198.51.100.8"),
    )
    assert [r.status for r in results] == ["refused", "refused", "stored", "refused"]
    assert results[0].error is not None and "private" in results[0].error
    assert results[3].error == (
        "session y of subscriber SUB-3 is bound to 198.51.100.7/32, not 198.51.100.8/32"
    )
    assert [r.subscriber_id for r in rows(session)] == ["SUB-3"]


def test_an_interim_of_an_unknown_session_starts_it_and_a_lone_stop_is_history(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    assert report(session, world, config, now, ev("interim"), ev("stop", "SUB-2", "z")) == [
        STORED,
        STORED,
    ]
    live, stopped = rows(session)
    assert (live.ended_at, stopped.ended_at, stopped.valid_until) == (None, now, now)
    # The late start of the stopped session binds nothing.
    assert report(session, world, config, now, ev("start", "SUB-2", "z")) == [STORED]
    session.refresh(stopped)
    assert stopped.ended_at == now


def test_only_the_isps_own_users_report_and_nothing_is_stored_otherwise(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    before = audit_count(session)
    for actor, isp_id, error in [
        (world.other_isp_user, world.isp, Forbidden),
        (world.applicant, world.isp, Forbidden),
        (world.regulator, world.isp, Forbidden),
        ("radius:test", 999_999, NotFound),
    ]:
        with pytest.raises(error):
            report_events(
                session,
                actor=actor,
                isp_id=isp_id,
                events=[ev("start")],
                now=clock.now(),
                config=config,
            )
    assert rows(session) == []
    assert audit_count(session) == before


def test_more_than_10000_events_are_refused_whole(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    events = [ev("start", f"S{i}", address=f"198.51.100.{i % 250 + 1}") for i in range(10_001)]
    with pytest.raises(ValidationFailed, match="at most 10000 events"):
        report(session, world, config, clock.now(), *events)
    assert rows(session) == []


def test_10000_events_in_one_report(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    # 10,000 subscribers sharing 40 addresses in port blocks of 256.
    events = [
        ev(
            "start",
            f"S{i}",
            f"s{i}",
            address=f"198.51.100.{i // 250 + 1}",
            ports=(256 * (i % 250), 256 * (i % 250) + 255),
        )
        for i in range(10_000)
    ]
    results = report(session, world, config, clock.now(), *events)
    assert results == [STORED] * 10_000
    assert session.scalar(select(func.count()).select_from(Binding)) == 10_000


def test_a_wide_prefix_and_addresses_inside_it_collide_in_either_order(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    first = report(
        session,
        world,
        config,
        now,
        ev("start", "SUB-1", "p", address="198.51.100.0/28", ports=(0, 1023)),
        ev("start", "SUB-2", "h", address="198.51.100.9", ports=(1000, 1000)),  # inside, overlaps
        ev("start", "SUB-2", "i", address="198.51.100.9", ports=(1024, 2047)),  # inside, apart
        ev("start", "SUB-3", "j", address="198.51.100.20"),  # whole address, outside the /28
        ev("start", "SUB-4", "k", address="198.51.100.16/29", ports=(5, 5)),  # covers .20
        ev("start", "SUB-4", "l", address="198.51.100.21", ports=(1, 1)),  # inside /29, own
    )
    assert [r.status for r in first] == [
        "stored",
        "refused",
        "stored",
        "stored",
        "refused",
        "stored",
    ]
    # Stored bindings are found again by a later report (loaded from the database).
    later = report(
        session,
        world,
        config,
        now + dt.timedelta(seconds=1),
        ev("start", "SUB-5", "m", address="198.51.100.0/27", ports=(2000, 2000)),
        ev("start", "SUB-5", "n", address="198.51.100.20", ports=(60000, 60000)),
        ev("start", "SUB-5", "o", address="198.51.100.14", ports=(1024, 1024)),
    )
    assert [r.status for r in later] == ["refused", "refused", "stored"]


def test_a_stored_wider_binding_is_found_by_a_later_report_of_an_address_deep_inside_it(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    """The index loads single addresses by key and wider bindings from the policy's widest
    block before an address on: a /24 stored earlier still refuses its last address."""
    now = clock.now()
    wide = ev("start", "SUB-1", "w", address="198.51.100.0/24", ports=(0, 1023))
    assert report(session, world, config, now, wide) == [STORED]
    later = report(
        session,
        world,
        config,
        now + dt.timedelta(seconds=1),
        ev("start", "SUB-2", "a", address="198.51.100.255", ports=(1023, 1023)),
        ev("start", "SUB-2", "b", address="198.51.100.254", ports=(1024, 1024)),
        ev("start", "SUB-3", "c", address="198.51.101.0", ports=(0, 0)),
    )
    assert [r.status for r in later] == ["refused", "stored", "stored"]
    assert later[0].error is not None and "198.51.100.0/24 ports [0, 1023]" in later[0].error


def test_an_expired_binding_renewed_after_its_address_moved_on_is_refused(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    t0 = clock.now()
    one_hour = t0 + dt.timedelta(hours=1)
    assert report(session, world, config, t0, ev("start", "SUB-1", "a", until=one_hour)) == [STORED]
    # The binding lapsed (no interim, no stop); the ISP gave the address to SUB-2.
    t1 = t0 + dt.timedelta(hours=2)
    assert report(session, world, config, t1, ev("start", "SUB-2", "b")) == [STORED]
    [late] = report(session, world, config, t1, ev("interim", "SUB-1", "a"))
    assert late.status == "refused"
    assert late.error is not None and "the earlier binding stands" in late.error
    # Renewed while still live, a binding needs no check and stays.
    t2 = t1 + dt.timedelta(hours=1)
    assert report(session, world, config, t2, ev("interim", "SUB-2", "b")) == [STORED]


def test_session_ids_with_quotes_and_backslashes_are_found_again(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    tricky = ["it's", "a\\b", "x');--", '"q"', "%s%(x)s"]
    starts = [ev("start", "SUB-1", s, address=f"198.51.100.{i + 1}") for i, s in enumerate(tricky)]
    assert report(session, world, config, now, *starts) == [STORED] * len(tricky)
    assert report(session, world, config, now, *starts) == [STORED] * len(tricky)
    assert sorted(r.session_id for r in rows(session)) == sorted(tricky)
