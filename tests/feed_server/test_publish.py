"""Publishing the feed from the registry: serials only on change, time-driven changes, the deltas
of revocation, renewal and amendment, bounded history, persistence, mode and reset (both
backends)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.feed_server.flow import bank_registration, registered_table, texts
from tests.registry.conftest import KARACHI, World
from tests.registry.flow import act
from vpnreg.clock import FrozenClock
from vpnreg.core.feed import EnforcementMode, EntryTable, Mode, VpnProtocol
from vpnreg.core.review import State, validity_end
from vpnreg.registry import services
from vpnreg.registry.errors import Forbidden, ValidationFailed
from vpnreg.registry.models import AuditLogRow, FeedDeltaRow, FeedEntryRow
from vpnreg.registry.services import feed_store


def held(session: Session) -> EntryTable:
    history = services.current_feed(session)
    assert history is not None
    return history.entries


def last_step(session: Session) -> tuple[EntryTable, EntryTable]:
    history = services.current_feed(session)
    assert history is not None and history.deltas
    step = history.deltas[-1]
    assert step.serial == history.serial
    return step.added, step.removed


def test_first_publish_is_serial_one_enforcing_and_repeats_change_nothing(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    first = services.publish(session, now=clock.now(), config=config)
    assert (first.serial, first.previous_serial, first.entries) == (1, 0, 0)
    assert first.mode == EnforcementMode(Mode.ENFORCE)
    assert first.mode.per_protocol == {}
    assert first.set_hash == EntryTable.empty().set_hash()
    for _ in range(3):
        clock.advance(dt.timedelta(minutes=5))
        again = services.publish(session, now=clock.now(), config=config)
        assert (again.session_id, again.serial, again.changed) == (first.session_id, 1, False)
    assert session.scalars(select(FeedDeltaRow)).all() == []


def test_approval_is_one_new_serial_whose_delta_adds_its_entries(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    services.publish(session, now=clock.now(), config=config)
    app = bank_registration(
        session, world, config, clock.now(), "192.0.2.0/24", ["198.51.100.7/32"]
    )
    result = services.publish(session, now=clock.now(), config=config)
    assert (result.previous_serial, result.serial, result.added, result.removed) == (1, 2, 1, 0)
    added, removed = last_step(session)
    assert texts(added) == [("192.0.2.0/24", ("198.51.100.7/32",), app.id)]
    assert len(removed) == 0
    expected = registered_table(session, config, clock.now())
    assert result.set_hash == expected.set_hash()
    assert held(session) == expected
    assert services.publish(session, now=clock.now(), config=config).serial == 2


def test_expiry_drops_the_entry_at_the_karachi_day_boundary_with_no_other_activity(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = bank_registration(session, world, config, clock.now(), "203.0.113.0/24")
    services.publish(session, now=clock.now(), config=config)
    assert app.valid_until is not None
    end = validity_end(app.valid_until, KARACHI)
    assert end.astimezone(KARACHI).time() == dt.time(0, 0)

    clock.set(end - dt.timedelta(seconds=1))
    before = services.publish(session, now=clock.now(), config=config)
    assert texts(held(session)) == [("203.0.113.0/24", (), app.id)]

    clock.set(end)
    after = services.publish(session, now=clock.now(), config=config)
    assert after.serial == before.serial + 1
    assert (after.added, after.removed, after.entries) == (0, 1, 0)
    assert [(c.application_id, c.to_state) for c in after.time_changes] == [(app.id, State.EXPIRED)]
    _, removed = last_step(session)
    assert texts(removed) == [("203.0.113.0/24", (), app.id)]
    assert after.set_hash == EntryTable.empty().set_hash()


def test_revocation_removes_the_entries_of_the_registration(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    keep = bank_registration(session, world, config, clock.now(), "198.51.100.0/24")
    gone = bank_registration(session, world, config, clock.now(), "192.0.2.0/25")
    services.publish(session, now=clock.now(), config=config)
    act(
        "revoke",
        session,
        application_id=gone.id,
        actor=world.regulator,
        reason="fraudulent documents",
        now=clock.now(),
        config=config,
    )
    result = services.publish(session, now=clock.now(), config=config)
    assert (result.added, result.removed) == (0, 1)
    added, removed = last_step(session)
    assert (texts(added), texts(removed)) == ([], [("192.0.2.0/25", (), gone.id)])
    assert texts(held(session)) == [("198.51.100.0/24", (), keep.id)]


def test_renewal_hands_over_in_one_serial_without_gap_or_flap(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    first = bank_registration(session, world, config, clock.now(), "198.51.100.0/24")
    renewal = act(
        "renew",
        session,
        application_id=first.id,
        actor=world.bank_applicant,
        now=clock.now(),
        config=config,
    )
    kw = {"application_id": renewal.id, "now": clock.now(), "config": config}
    act("verify", session, actor=world.isp_user, **kw)  # type: ignore[arg-type]
    act("approve", session, actor=world.regulator, **kw)  # type: ignore[arg-type]
    start = services.publish(session, now=clock.now(), config=config)
    assert texts(held(session)) == [("198.51.100.0/24", (), first.id)]
    assert first.valid_until is not None
    end = validity_end(first.valid_until, KARACHI)

    # Publishing around the hand-over: the prefix is covered at every serial.
    serials = [start.serial]
    for at in (end - dt.timedelta(days=31), end - dt.timedelta(microseconds=1), end):
        clock.set(at)
        result = services.publish(session, now=clock.now(), config=config)
        serials.append(result.serial)
        assert [str(e.prefix) for e in held(session)] == ["198.51.100.0/24"]
    # Expiring (30 days before) keeps the entry; the hand-over itself is exactly one step.
    assert serials == [start.serial] * 3 + [start.serial + 1]
    added, removed = last_step(session)
    assert texts(removed) == [("198.51.100.0/24", (), first.id)]
    assert texts(added) == [("198.51.100.0/24", (), renewal.id)]


def test_peer_amendment_replaces_the_entry_once_approved(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = bank_registration(
        session, world, config, clock.now(), "192.0.2.0/24", ["198.51.100.7/32"]
    )
    services.publish(session, now=clock.now(), config=config)
    amendment = services.amend_peers(
        session,
        application_id=app.id,
        prefix="192.0.2.0/24",
        peers=["203.0.113.9", "203.0.113.10"],
        actor=world.bank_applicant,
        now=clock.now(),
        config=config,
    )
    pending = services.publish(session, now=clock.now(), config=config)
    assert not pending.changed
    services.approve_amendment(
        session, amendment_id=amendment.id, actor=world.regulator, now=clock.now(), config=config
    )
    result = services.publish(session, now=clock.now(), config=config)
    assert result.serial == pending.serial + 1
    added, removed = last_step(session)
    assert texts(removed) == [("192.0.2.0/24", ("198.51.100.7/32",), app.id)]
    # Peers are held in the order of their encoding: .9 before .10.
    assert texts(added) == [("192.0.2.0/24", ("203.0.113.9/32", "203.0.113.10/32"), app.id)]


def test_history_keeps_max_deltas_and_older_serials_need_a_snapshot(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    services.publish(session, now=clock.now(), config=config, max_deltas=2)
    for i, prefix in enumerate(("192.0.2.0/26", "192.0.2.64/26", "192.0.2.128/26")):
        clock.advance(dt.timedelta(minutes=1))
        bank_registration(session, world, config, clock.now(), prefix)
        result = services.publish(session, now=clock.now(), config=config, max_deltas=2)
        assert result.serial == i + 2
    history = services.current_feed(session)
    assert history is not None
    assert [(d.previous_serial, d.serial) for d in history.deltas] == [(2, 3), (3, 4)]
    assert history.delta_since(1) is None
    assert history.delta_since(2) is not None
    stored = session.scalars(select(FeedDeltaRow.serial).order_by(FeedDeltaRow.serial)).all()
    assert list(stored) == [3, 4]


def test_a_history_rebuilt_from_rows_equals_the_published_one(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    services.publish(session, now=clock.now(), config=config)
    app = bank_registration(
        session, world, config, clock.now(), "2001:db8::/48", ["198.51.100.0/24", "2001:db8:1::/48"]
    )
    bank_registration(session, world, config, clock.now(), "192.0.2.0/24")
    services.publish(session, now=clock.now(), config=config)
    act("revoke", session, application_id=app.id, actor=world.regulator, reason="closed",
        now=clock.now(), config=config,
    )  # fmt: skip
    services.publish(session, now=clock.now(), config=config)
    published = services.current_feed(session)
    feed_store.forget_histories()
    rebuilt = services.current_feed(session)
    assert published is not None and rebuilt is not None
    assert rebuilt is not published
    assert (rebuilt.session_id, rebuilt.serial, rebuilt.mode, rebuilt.created) == (
        published.session_id,
        published.serial,
        published.mode,
        published.created,
    )
    assert rebuilt.entries == published.entries
    assert rebuilt.entries.to_json_list() == published.entries.to_json_list()
    assert [(d.serial, d.added.to_json_list(), d.removed.to_json_list(), d.set_hash)
            for d in rebuilt.deltas] == [
        (d.serial, d.added.to_json_list(), d.removed.to_json_list(), d.set_hash)
        for d in published.deltas
    ]  # fmt: skip
    assert len(session.scalars(select(FeedEntryRow)).all()) == len(published.entries) == 1


def test_mode_is_the_regulators_audited_kill_switch(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    start = services.publish(session, now=clock.now(), config=config)
    with pytest.raises(Forbidden):
        services.set_mode(
            session,
            mode="dry-run",
            reason="t",
            actor=world.isp_user,
            now=clock.now(),
            config=config,
        )
    assert services.publish(session, now=clock.now(), config=config).serial == start.serial

    per = services.set_mode(
        session, mode="dry-run", protocol="wireguard", reason="trial", actor=world.regulator,
        now=clock.now(), config=config,
    )  # fmt: skip
    assert per.serial == start.serial + 1
    assert per.mode == EnforcementMode(Mode.ENFORCE, {VpnProtocol.WIREGUARD: Mode.DRY_RUN})
    everywhere = services.set_mode(
        session, mode="dry-run", reason="national trial", actor=world.regulator2,
        now=clock.now(), config=config,
    )  # fmt: skip
    assert everywhere.mode == EnforcementMode(Mode.DRY_RUN)
    assert everywhere.mode.effective("wireguard") is Mode.DRY_RUN
    assert everywhere.mode.effective("openvpn") is Mode.DRY_RUN
    history = services.current_feed(session)
    assert history is not None and history.deltas[-1].mode == EnforcementMode(Mode.DRY_RUN)

    events = session.scalars(
        select(AuditLogRow).where(AuditLogRow.action == "feed.mode").order_by(AuditLogRow.seq)
    ).all()
    steps = [(e.actor, e.before["default"], e.after["default"], e.after["serial"]) for e in events]
    assert steps == [
        ("reg1", "enforce", "enforce", per.serial),
        ("reg2", "enforce", "dry-run", everywhere.serial),
    ]  # fmt: skip
    assert events[0].after["per_protocol"] == {"wireguard": "dry-run"}
    with pytest.raises(ValidationFailed) as bad:
        services.set_mode(
            session, mode="off", protocol="telnet", reason="x", actor=world.regulator,
            now=clock.now(), config=config,
        )  # fmt: skip
    assert {e.field for e in bad.value.errors} == {"mode", "protocol"}


def test_reset_starts_a_new_session_never_earlier_than_the_old_state(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    bank_registration(session, world, config, clock.now(), "192.0.2.0/24")
    clock.advance(dt.timedelta(hours=2))
    old = services.publish(session, now=clock.now(), config=config)
    services.set_mode(
        session, mode="dry-run", protocol="openvpn", reason="trial", actor=world.regulator,
        now=clock.now(), config=config,
    )  # fmt: skip
    with pytest.raises(Forbidden):
        services.reset_feed(session, actor=world.applicant, now=clock.now(), config=config)
    # A clock stepped back must not give the new session an earlier state time.
    earlier = clock.now() - dt.timedelta(hours=1)
    new = services.reset_feed(session, actor=world.regulator, now=earlier, config=config)
    assert new.session_id != old.session_id
    assert new.serial == 1
    assert new.created >= old.created
    assert new.set_hash == old.set_hash
    assert new.mode.effective("openvpn") is Mode.DRY_RUN
    assert session.scalars(select(FeedDeltaRow)).all() == []
