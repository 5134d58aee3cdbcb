"""`services.explain`: an address's verdicts from the gateways' reports, with the registration,
the implied rule and the applied serial's standing, beside the registry's answer (both backends)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.registry.conftest import World, add_user
from tests.registry.flow import approved
from tests.registry.test_bindings import ev
from tests.registry.test_bindings import report as bind
from vpnreg.clock import FrozenClock
from vpnreg.core.gateway_report import CountKey, FeedApplied, Report, hour_of
from vpnreg.core.review import Role
from vpnreg.registry import services
from vpnreg.registry.errors import Forbidden, ValidationFailed
from vpnreg.registry.models import AuditLogRow
from vpnreg.registry.services.explain import explain
from vpnreg.registry.services.gateway_reports import store_report

H = dt.timedelta(hours=1)


def report(
    session: Session,
    gateway: str,
    when: dt.datetime,
    feed: tuple[str, int, str] | None,
    counts: list[tuple[CountKey, int]],
) -> None:
    stored = store_report(
        session,
        report=Report(
            report_id=uuid.uuid4().hex,
            gateway_id=gateway,
            created=when,
            mode="nftables",
            feed=None if feed is None else FeedApplied(*feed),
            counts=tuple(counts),
        ),
        token_name=gateway,
        now=when,
    )
    assert stored


def test_an_address_is_explained_by_its_registration_its_24_and_each_gateways_serial(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    bank = approved(session, world, config, clock.now(), [("192.0.2.0/26", ["198.51.100.7"])],
                    bank=True, protocols=("wireguard",))  # fmt: skip
    first = services.publish(session, now=clock.now(), config=config)
    clock.advance(dt.timedelta(hours=1))
    approved(session, world, config, clock.now(), [("203.0.113.128/25", [])], bank=True)
    second = services.publish(session, now=clock.now(), config=config)
    assert second.serial == first.serial + 1
    clock.advance(dt.timedelta(minutes=30))
    now = clock.now()
    hour = hour_of(now)
    current = (second.session_id, second.serial, second.set_hash)
    stale = (first.session_id, first.serial, first.set_hash)
    report(session, "gw-fresh", now, current, [
        (CountKey(hour, "wireguard", "registered", registration_id=bank.id), 12),
        (CountKey(hour, "openvpn", "unregistered", registration_id=bank.id), 2),
        (CountKey(hour, "wireguard", "unregistered", prefix="192.0.2.0/24"), 3),
        (CountKey(hour, "wireguard", "unregistered", prefix="192.0.3.0/24"), 99),
    ])  # fmt: skip
    report(session, "gw-stale", now, stale, [
        (CountKey(hour, "wireguard", "unregistered", registration_id=bank.id), 5),
    ])  # fmt: skip
    report(session, "gw-stale", now + dt.timedelta(minutes=5), stale, [
        (CountKey(hour, "wireguard", "unregistered", registration_id=bank.id), 1),
    ])  # fmt: skip
    # a report outside the window is not shown
    report(session, "gw-fresh", now, current, [
        (CountKey(hour - dt.timedelta(days=2), "wireguard", "registered",
                  registration_id=bank.id), 7),
    ])  # fmt: skip

    done = explain(session, actor=world.regulator, target="192.0.2.9", at=now,
                   now=now, config=config)  # fmt: skip

    assert done.target == "192.0.2.9"
    assert done.registry_answer.startswith("192.0.2.9 was registered at ")
    assert bank.tracking_number in done.registry_answer
    assert [(h.registration_id, h.space, h.via, h.registered_at_time) for h in done.holders] == [
        (bank.id, "192.0.2.0/26", "prefix", True)
    ]
    rows = {
        (r.gateway_id, r.protocol, r.verdict, r.registration_id, r.prefix): r for r in done.rows
    }
    assert set(rows) == {
        ("gw-fresh", "wireguard", "registered", bank.id, None),
        ("gw-fresh", "openvpn", "unregistered", bank.id, None),
        ("gw-fresh", "wireguard", "unregistered", None, "192.0.2.0/24"),
        ("gw-stale", "wireguard", "unregistered", bank.id, None),
    }
    fresh = rows["gw-fresh", "wireguard", "registered", bank.id, None]
    assert (fresh.flows, fresh.rule, fresh.feed_serial, fresh.serial_status) == (
        12, "registered-listed-peer", second.serial, "current"
    )  # fmt: skip
    assert fresh.tracking_number == bank.tracking_number
    protocol_miss = rows["gw-fresh", "openvpn", "unregistered", bank.id, None]
    assert protocol_miss.rule == "protocol-not-registered"
    by_prefix = rows["gw-fresh", "wireguard", "unregistered", None, "192.0.2.0/24"]
    assert (by_prefix.flows, by_prefix.rule) == (3, "not-registered")
    behind = rows["gw-stale", "wireguard", "unregistered", bank.id, None]
    # two reports under the same applied state are summed; the serial was behind then
    assert (behind.flows, behind.rule, behind.feed_serial) == (6, "peer-not-listed", first.serial)
    assert (behind.serial_status, behind.serial_note) == (
        "behind", f"behind (registry at serial {second.serial})"
    )  # fmt: skip
    assert done.empty_note is None

    event = session.scalars(select(AuditLogRow).where(AuditLogRow.action == "read_explain")).one()
    assert (event.actor, event.object_id, event.after["rows"]) == ("reg1", "192.0.2.9", 4)


def test_a_prefix_an_empty_answer_and_who_may_ask(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    auditor = add_user(session, "aud1", Role.AUDITOR, now)
    admin = add_user(session, "adm1", Role.ADMIN, now)
    hour = hour_of(now)
    report(session, "gw-a", now, None, [
        (CountKey(hour, "openvpn", "unregistered", prefix="198.18.5.0/24"), 4),
        (CountKey(hour, "openvpn", "unregistered", prefix="198.19.0.0/24"), 8),
    ])  # fmt: skip
    wide = explain(session, actor=auditor, target="198.18.0.0/16", at=now, now=now, config=config)
    assert [(r.prefix, r.flows, r.serial_status) for r in wide.rows] == [
        ("198.18.5.0/24", 4, "no-feed")
    ]
    assert wide.registry_answer.startswith("no registration held any part of 198.18.0.0/16")

    empty = explain(session, actor=admin, target="2001:db8::1", at=now, now=now, config=config)
    assert empty.rows == ()
    assert empty.empty_note is not None
    assert empty.empty_note.startswith("no reports mention this address")
    assert "was not registered" in empty.registry_answer

    with pytest.raises(Forbidden):
        explain(session, actor=world.applicant, target="198.18.5.1", at=now, now=now,
                config=config)  # fmt: skip
    with pytest.raises(ValidationFailed) as too_wide:
        explain(session, actor=auditor, target="10.0.0.0/8", at=now, now=now, config=config)
    assert too_wide.value.errors[0].code == "too_wide"
    with pytest.raises(ValidationFailed):
        explain(session, actor=auditor, target="198.18.5.1", at=now, hours=0, now=now,
                config=config)  # fmt: skip
    with pytest.raises(ValidationFailed):
        explain(session, actor=auditor, target="not-an-ip", at=now, now=now, config=config)
    actors = session.scalars(
        select(AuditLogRow.actor).where(AuditLogRow.action == "read_explain")
    ).all()
    assert sorted(actors) == ["adm1", "aud1"]


def test_an_address_bound_to_a_subscriber_is_explained_by_that_registration_at_the_time(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    t0 = clock.now()
    app = approved(session, world, config, t0, [], subscriber_id="SUB-1", protocols=("ipsec",))
    bind(session, world, config, t0, ev("start", "SUB-1", "a"))
    bind(session, world, config, t0 + H, ev("stop", "SUB-1", "a"))
    report(session, "gw-a", t0, None, [
        (CountKey(hour_of(t0), "ipsec", "registered", registration_id=app.id), 3),
    ])  # fmt: skip
    during = explain(session, actor=world.regulator, target="198.51.100.7", at=t0 + H / 2,
                     now=t0 + 2 * H, config=config)  # fmt: skip
    assert [(h.registration_id, h.via, h.registered_at_time) for h in during.holders] == [
        (app.id, "binding", True)
    ]
    assert "through an ISP binding of 198.51.100.7" in during.registry_answer
    [row] = during.rows
    assert (row.registration_id, row.rule, row.tracking_number) == (
        app.id, "registered-any-peer", app.tracking_number
    )  # fmt: skip
    # after the stop the binding no longer ties the address to the registration
    after = explain(session, actor=world.regulator, target="198.51.100.7", at=t0 + 2 * H,
                    now=t0 + 2 * H, config=config)  # fmt: skip
    assert after.holders == () and after.rows == ()
    assert "was not registered" in after.registry_answer
