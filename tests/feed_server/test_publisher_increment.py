"""The publisher's incremental step (registry.services.feed_increment), on both backends: while
only ISPs' binding reports, applications' steps and time move, `catch_up` patches the published
set without reading the whole registered set, and the set it holds is always the one a full
publish computes; any other audited change, or a feed another process moved, is a full publish."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.feed_server.conftest import Committed
from tests.feed_server.flow import bank_registration, registered_table
from tests.feed_server.test_publisher import Recorded
from tests.registry import flow
from vpnreg.clock import FrozenClock
from vpnreg.core.bindings import BindingEvent
from vpnreg.core.feed import EntryTable
from vpnreg.registry import services
from vpnreg.registry.services import feed_increment
from vpnreg.registry.services.bindings import report_events
from vpnreg.registry.services.feed_publisher import FeedPublisher

#: Subscribers 0-5 hold registrations (the first three are revoked later), 6-7 none.
SUBSCRIBERS = [f"SUB-{i}" for i in range(8)]
REGISTERED = SUBSCRIBERS[:6]


@pytest.fixture
def recorded(committed: Committed) -> Iterator[Recorded]:
    made = Recorded(committed.url)
    try:
        yield made
    finally:
        made.engine.dispose()


def _report(committed: Committed, clock: FrozenClock, *events: BindingEvent) -> None:
    report_events(
        committed.session,
        actor="test:isp",
        isp_id=committed.world.isp,
        events=list(events),
        now=clock.now(),
        config=committed.config,
    )
    committed.session.rollback()


def _held(publisher: FeedPublisher) -> EntryTable:
    history = publisher.history()
    assert history is not None
    return history.entries


def _full_set(committed: Committed, clock: FrozenClock) -> EntryTable:
    table = registered_table(committed.session, committed.config, clock.now())
    committed.session.rollback()
    return table


def test_binding_reports_are_published_without_reading_the_registered_set(
    committed: Committed, recorded: Recorded, clock: FrozenClock
) -> None:
    bank_registration(
        committed.session, committed.world, committed.config, clock.now(), "192.0.2.0/24"
    )
    flow.approved(
        committed.session, committed.world, committed.config, clock.now(), [], subscriber_id="A"
    )
    committed.session.rollback()
    publisher = FeedPublisher(engine=recorded.engine, config=committed.config, clock=clock)
    publisher.publish()
    before = _held(publisher)

    _report(committed, clock, BindingEvent("start", "A", "s1", "198.51.100.7", ports=(0, 1023)))
    recorded.statements.clear()
    outcome = publisher.catch_up(check_time=False)
    assert outcome.published and outcome.moved
    # The prefix-bound side of the set was not read again, nor every binding.
    assert not recorded.touched("application_prefixes")
    assert not any("from bindings join applications" in s and " in (" not in s
                   for s in recorded.statements)  # fmt: skip
    assert len(_held(publisher)) == len(before) + 1
    assert _held(publisher) == _full_set(committed, clock)

    # A stop, then a binding reaching its end: each a new serial, each still the full set.
    clock.advance(dt.timedelta(seconds=5))
    _report(committed, clock, BindingEvent("stop", "A", "s1", "198.51.100.7", ports=(0, 1023)))
    assert publisher.catch_up(check_time=False).moved
    assert _held(publisher) == before
    _report(
        committed,
        clock,
        BindingEvent("start", "A", "s2", "198.51.100.8", until=clock.now() + dt.timedelta(hours=1)),
    )
    assert publisher.catch_up(check_time=False).moved
    clock.advance(dt.timedelta(hours=1))
    recorded.statements.clear()
    assert publisher.catch_up(check_time=True).moved
    assert not recorded.touched("application_prefixes")
    assert _held(publisher) == before == _full_set(committed, clock)


def _read_every_prefix(recorded: Recorded) -> bool:
    """Whether a statement read the prefixes of every registration (a full publish), not those
    of some named ones."""
    return any(
        " application_prefixes" in s and "applications.id in (" not in s
        for s in recorded.statements
    )


def test_any_other_audited_change_is_a_full_publish(
    committed: Committed, recorded: Recorded, clock: FrozenClock
) -> None:
    publisher = FeedPublisher(engine=recorded.engine, config=committed.config, clock=clock)
    publisher.publish()
    _report(committed, clock, BindingEvent("start", "A", "s1", "198.51.100.7"))
    bank_registration(
        committed.session, committed.world, committed.config, clock.now(), "192.0.2.0/24"
    )
    services.create_organisation(
        committed.session,
        name="Another software house",
        category="software_house",
        registration_number="SH-0042",
        actor=committed.world.regulator,
        now=clock.now(),
        config=committed.config,
    )
    committed.session.rollback()
    recorded.statements.clear()
    assert publisher.catch_up(check_time=False).moved
    assert _read_every_prefix(recorded)
    assert _held(publisher) == _full_set(committed, clock)


def test_application_steps_are_published_without_reading_the_registered_set(
    committed: Committed, recorded: Recorded, clock: FrozenClock
) -> None:
    """An approval, a peer amendment, a protocol amendment, a suspension and a revocation each
    reach the feed through the incremental step: only the named registration's prefixes are
    read, and the held set is the full one after each."""
    world, config = committed.world, committed.config
    other = bank_registration(committed.session, world, config, clock.now(), "198.51.100.0/28")
    committed.session.rollback()
    publisher = FeedPublisher(engine=recorded.engine, config=config, clock=clock)
    publisher.publish()

    def step_then_catch_up(change: Any) -> None:
        change()
        committed.session.rollback()
        recorded.statements.clear()
        assert publisher.catch_up(check_time=False).moved
        assert recorded.touched("application_prefixes")
        assert not _read_every_prefix(recorded)
        assert _held(publisher) == _full_set(committed, clock)

    made: list[Any] = []
    step_then_catch_up(
        lambda: made.append(
            bank_registration(
                committed.session, world, config, clock.now(), "192.0.2.0/24", ["203.0.113.1"]
            )
        )
    )
    app = made[0]
    assert {e.registration_id for e in _held(publisher).to_entries()} == {other.id, app.id}

    def amend_peers() -> None:
        amendment = services.amend_peers(
            committed.session,
            application_id=app.id,
            prefix="192.0.2.0/24",
            peers=["203.0.113.9"],
            actor=world.bank_applicant,
            now=clock.now(),
            config=config,
        )
        services.approve_amendment(
            committed.session,
            amendment_id=amendment.id,
            actor=world.regulator,
            now=clock.now(),
            config=config,
        )

    step_then_catch_up(amend_peers)

    def amend_protocols() -> None:
        current = services.get_application(committed.session, application_id=app.id)
        asked = services.amend_protocols(
            committed.session,
            application_id=app.id,
            protocols=["wireguard"],
            actor=world.bank_applicant,
            now=clock.now(),
            expected_version=current.version,
        )
        current = services.get_application(committed.session, application_id=app.id)
        services.decide_protocol_amendment(
            committed.session,
            amendment_id=asked.id,
            approve=True,
            actor=world.regulator,
            now=clock.now(),
            expected_version=current.version,
        )

    step_then_catch_up(amend_protocols)
    for action, actor, reason in (
        ("withdraw_attestation", world.isp_user, "contract ended"),
        ("reattest", world.isp_user, ""),
        ("revoke", world.regulator, "misuse"),
    ):
        step_then_catch_up(
            lambda action=action, actor=actor, reason=reason: flow.act(
                action,
                committed.session,
                application_id=app.id,
                actor=actor,
                now=clock.now(),
                config=config,
                **({"reason": reason} if reason else {}),
            )
        )
    assert {e.registration_id for e in _held(publisher).to_entries()} == {other.id}


def test_a_subscriber_bound_registrations_step_moves_its_bindings_entries(
    committed: Committed, recorded: Recorded, clock: FrozenClock
) -> None:
    """Approving (or revoking) a subscriber-bound registration adds (or drops) the entries of
    its subscriber's live bindings, through the incremental step."""
    world, config = committed.world, committed.config
    publisher = FeedPublisher(engine=recorded.engine, config=config, clock=clock)
    publisher.publish()
    _report(committed, clock, BindingEvent("start", "A", "s1", "198.51.100.7"))
    assert publisher.catch_up(check_time=False).published
    assert len(_held(publisher)) == 0  # no registration yet: history only
    app = flow.approved(committed.session, world, config, clock.now(), [], subscriber_id="A")
    committed.session.rollback()
    recorded.statements.clear()
    assert publisher.catch_up(check_time=False).moved
    assert not _read_every_prefix(recorded)
    assert [e.registration_id for e in _held(publisher).to_entries()] == [app.id]
    assert _held(publisher) == _full_set(committed, clock)
    flow.act(
        "revoke",
        committed.session,
        application_id=app.id,
        actor=world.regulator,
        now=clock.now(),
        config=config,
        reason="misuse",
    )
    committed.session.rollback()
    assert publisher.catch_up(check_time=False).moved
    assert len(_held(publisher)) == 0 and _held(publisher) == _full_set(committed, clock)


def test_a_feed_another_process_moved_is_not_patched(
    committed: Committed, recorded: Recorded, clock: FrozenClock
) -> None:
    flow.approved(
        committed.session, committed.world, committed.config, clock.now(), [], subscriber_id="A"
    )
    committed.session.rollback()
    publisher = FeedPublisher(engine=recorded.engine, config=committed.config, clock=clock)
    publisher.publish()
    _report(committed, clock, BindingEvent("start", "A", "s1", "198.51.100.7"))
    services.publish(committed.session, now=clock.now(), config=committed.config)
    _report(committed, clock, BindingEvent("start", "A", "s2", "198.51.100.9"))
    recorded.statements.clear()
    assert publisher.catch_up(check_time=False).moved
    assert recorded.touched("application_prefixes")  # a full publish over the other's state
    assert _held(publisher) == _full_set(committed, clock)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_under_random_churn_the_held_set_is_always_the_full_set(
    committed: Committed, clock: FrozenClock, seed: int
) -> None:
    rng = random.Random(seed)
    apps = {
        sub: flow.approved(
            committed.session,
            committed.world,
            committed.config,
            clock.now(),
            [],
            subscriber_id=sub,
            protocols=("wireguard",) if i % 2 else (),
        )
        for i, sub in enumerate(REGISTERED)
    }
    committed.session.rollback()
    publisher = FeedPublisher.for_url(committed.url, config=committed.config, clock=clock)
    try:
        publisher.publish()
        sessions: dict[str, list[str]] = {sub: [] for sub in SUBSCRIBERS}
        for step in range(40):
            events = []
            for _ in range(rng.randint(1, 6)):
                sub = rng.choice(SUBSCRIBERS)
                slot = SUBSCRIBERS.index(sub)
                kind = rng.choice(["start", "start", "interim", "stop"])
                if kind == "start" or not sessions[sub]:
                    sessions[sub].append(f"{sub}-{step}-{len(events)}")
                    kind = "start"
                session_id = rng.choice(sessions[sub]) if kind != "start" else sessions[sub][-1]
                # Even subscribers share 198.51.100.1 by port block, odd ones own an address.
                address = "198.51.100.1" if slot % 2 == 0 else f"198.51.100.{10 + slot}"
                ports = (slot * 1000, slot * 1000 + 999) if slot % 2 == 0 else None
                minutes = rng.choice([1, 3, 10, 60])
                events.append(
                    BindingEvent(
                        kind,
                        sub,
                        session_id,
                        address,
                        ports=ports,
                        until=clock.now() + dt.timedelta(minutes=minutes),
                    )
                )
            _report(committed, clock, *events)
            if step == 25:
                for sub in REGISTERED[:3]:
                    flow.act(
                        "revoke",
                        committed.session,
                        application_id=apps[sub].id,
                        actor=committed.world.regulator,
                        now=clock.now(),
                        config=committed.config,
                        reason="churn test",
                    )
                committed.session.rollback()
            clock.advance(dt.timedelta(seconds=rng.choice([1, 30, 120, 400])))
            publisher.catch_up(check_time=rng.random() < 0.5)
            assert _held(publisher) == _full_set(committed, clock), step
    finally:
        publisher.close()


@pytest.mark.parametrize("seed", [4, 5])
def test_under_random_application_steps_the_held_set_is_always_the_full_set(
    committed: Committed, recorded: Recorded, clock: FrozenClock, seed: int
) -> None:
    """Approvals, suspensions, re-attestations and revocations of prefix-bound and
    subscriber-bound registrations, with binding reports between them and time passing (days,
    so that expiries fall due and force full publishes): the held set is the full one after
    every catch-up, and most catch-ups were incremental."""
    rng = random.Random(seed)
    world, config = committed.world, committed.config
    free = [f"192.0.2.{16 * i}/28" for i in range(16)]
    live: dict[int, str] = {}  # registration id -> its state here (active or suspended)
    subscribers = [f"SUB-{i}" for i in range(4)]
    publisher = FeedPublisher(engine=recorded.engine, config=config, clock=clock)
    incremental = 0
    try:
        publisher.publish()
        for step in range(30):
            for _ in range(rng.randint(1, 3)):
                choice = rng.random()
                if choice < 0.35 and free:
                    made = bank_registration(
                        committed.session, world, config, clock.now(),
                        free.pop(rng.randrange(len(free))),
                    )  # fmt: skip
                    live[made.id] = "active"
                elif choice < 0.5 and subscribers:
                    sub = rng.choice(subscribers)
                    subscribers.remove(sub)  # one registration per subscriber in force
                    made = flow.approved(
                        committed.session, world, config, clock.now(), [], subscriber_id=sub
                    )
                    live[made.id] = "active"
                elif choice < 0.8 and live:
                    app_id = rng.choice(sorted(live))
                    if live[app_id] == "suspended":
                        action, actor, kw = "reattest", world.isp_user, {}
                    elif rng.random() < 0.5:
                        action, actor, kw = (
                            "withdraw_attestation",
                            world.isp_user,
                            {"reason": "contract ended"},
                        )
                    else:
                        action, actor, kw = "revoke", world.regulator, {"reason": "misuse"}
                    flow.act(
                        action, committed.session, application_id=app_id, actor=actor,
                        now=clock.now(), config=config, **kw,
                    )  # fmt: skip
                    if action == "revoke":
                        del live[app_id]
                    else:
                        live[app_id] = "suspended" if action != "reattest" else "active"
                else:
                    sub = f"SUB-{rng.randrange(4)}"
                    _report(
                        committed, clock,
                        BindingEvent("start", sub, f"{sub}-{step}", f"198.51.100.{step + 1}"),
                    )  # fmt: skip
                committed.session.rollback()
            if step % 10 == 9:
                clock.advance(dt.timedelta(days=rng.choice([1, 40])))
            else:
                clock.advance(dt.timedelta(seconds=rng.choice([1, 30])))
            recorded.statements.clear()
            publisher.catch_up(check_time=rng.random() < 0.5)
            incremental += not _read_every_prefix(recorded)
            assert _held(publisher) == _full_set(committed, clock), step
        assert incremental >= 15, incremental
    finally:
        publisher.close()


def test_a_binding_reported_ahead_of_the_publishers_clock_is_published_once_it_begins(
    committed: Committed, clock: FrozenClock
) -> None:
    """A report stamps its bindings with its own clock; one running ahead of the publisher's
    commits a binding that this publish finds not yet begun (its sequence then lies behind the
    mark). It is published once the publisher's clock passes its start, by the time check or by
    the next report's incremental step."""
    flow.approved(
        committed.session, committed.world, committed.config, clock.now(), [], subscriber_id="A"
    )
    flow.approved(
        committed.session, committed.world, committed.config, clock.now(), [], subscriber_id="B"
    )
    committed.session.rollback()
    publisher = FeedPublisher.for_url(committed.url, config=committed.config, clock=clock)
    try:
        publisher.publish()
        ahead = clock.now() + dt.timedelta(seconds=5)

        def report_ahead(event: BindingEvent) -> None:
            report_events(
                committed.session,
                actor="test:isp",
                isp_id=committed.world.isp,
                events=[event],
                now=ahead,
                config=committed.config,
            )
            committed.session.rollback()

        report_ahead(BindingEvent("start", "A", "s1", "198.51.100.7"))
        publisher.catch_up(check_time=False)
        assert len(_held(publisher)) == 0 and _held(publisher) == _full_set(committed, clock)
        clock.advance(dt.timedelta(seconds=10))
        assert publisher.catch_up(check_time=True).moved  # the time check notices it began
        assert len(_held(publisher)) == 1 and _held(publisher) == _full_set(committed, clock)

        # the same through the next report's incremental step, without the time check
        ahead = clock.now() + dt.timedelta(seconds=5)
        report_ahead(BindingEvent("start", "B", "s1", "198.51.100.8"))
        publisher.catch_up(check_time=False)
        clock.advance(dt.timedelta(seconds=10))
        _report(committed, clock, BindingEvent("start", "A", "s2", "198.51.100.9"))
        assert publisher.catch_up(check_time=False).moved
        assert len(_held(publisher)) == 3 and _held(publisher) == _full_set(committed, clock)
    finally:
        publisher.close()


def test_an_approval_stamped_ahead_of_the_publishers_clock_is_published_once_it_begins(
    committed: Committed, clock: FrozenClock
) -> None:
    """An approval takes effect at its own clock's time. One stamped a little after the
    publisher's `now` (another server's clock ahead, or an approval committed between the
    publisher's reading of its clock and of the database) is left out of that publish, not yet
    valid, although its audit event is behind the mark. It is published once the publisher's
    clock reaches its start, at the first catch-up, with nothing else changed; and a change
    published meanwhile takes it too (the incremental step's own look for registrations that
    began). (bench_gateway_fanout lost two of 1,200 approvals this way before.)"""
    world, config = committed.world, committed.config
    publisher = FeedPublisher.for_url(committed.url, config=config, clock=clock)
    try:
        publisher.publish()
        ahead = clock.now() + dt.timedelta(seconds=2)
        first = bank_registration(committed.session, world, config, ahead, "192.0.2.0/28")
        committed.session.rollback()
        publisher.catch_up(check_time=False)
        assert len(_held(publisher)) == 0 and _held(publisher) == _full_set(committed, clock)
        clock.advance(dt.timedelta(seconds=1))
        assert not publisher.catch_up(check_time=False).published  # not begun, nothing audited
        clock.advance(dt.timedelta(seconds=1))
        assert publisher.catch_up(check_time=False).moved  # it began: published, no time check
        assert [e.registration_id for e in _held(publisher).to_entries()] == [first.id]
        assert not publisher.catch_up(check_time=False).published  # and only once

        # the same through the next approval's incremental step, without the time check
        ahead = clock.now() + dt.timedelta(seconds=2)
        second = bank_registration(committed.session, world, config, ahead, "192.0.2.16/28")
        committed.session.rollback()
        publisher.catch_up(check_time=False)
        clock.advance(dt.timedelta(seconds=5))
        third = bank_registration(committed.session, world, config, clock.now(), "192.0.2.32/28")
        committed.session.rollback()
        assert publisher.catch_up(check_time=False).moved
        held = {e.registration_id for e in _held(publisher).to_entries()}
        assert held == {first.id, second.id, third.id}
        assert _held(publisher) == _full_set(committed, clock)
    finally:
        publisher.close()


def test_a_report_committed_during_the_step_waits_for_the_next_one(
    committed: Committed, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step reads one snapshot: a report another process commits between its statements
    (here: right after it listed the registrations to replace) is neither half taken nor lost,
    but published by the next step."""
    for sub in ("A", "B"):
        flow.approved(
            committed.session, committed.world, committed.config, clock.now(), [], subscriber_id=sub
        )
    committed.session.rollback()
    publisher = FeedPublisher.for_url(committed.url, config=committed.config, clock=clock)
    try:
        publisher.publish()
        clock.advance(dt.timedelta(seconds=1))  # both reports begin after that publish
        _report(committed, clock, BindingEvent("start", "A", "s1", "198.51.100.7"))
        listed = feed_increment.subscriber_registrations
        meanwhile = [BindingEvent("start", "B", "s1", "198.51.100.8")]

        def list_then_commit_elsewhere(session: Session, subscribers: Any) -> set[int]:
            found = listed(session, subscribers)
            if meanwhile:
                _report(committed, clock, meanwhile.pop())
            return found

        monkeypatch.setattr(feed_increment, "subscriber_registrations", list_then_commit_elsewhere)
        assert publisher.catch_up(check_time=False).moved
        assert len(_held(publisher)) == 1  # A's binding; B's report came after the snapshot
        assert publisher.catch_up(check_time=False).moved
        assert len(_held(publisher)) == 2 and _held(publisher) == _full_set(committed, clock)
    finally:
        publisher.close()
