"""Subscriber-bound registrations through the review, and their bindings as feed entries."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.registry import flow
from tests.registry.conftest import World
from tests.registry.test_bindings import ev, report
from vpnreg.clock import FrozenClock
from vpnreg.core.feed import AllowlistEntry
from vpnreg.core.protocols import VpnProtocol
from vpnreg.core.review import validity_end
from vpnreg.registry import services
from vpnreg.registry.errors import Forbidden, OverlapConflict, ValidationFailed
from vpnreg.registry.models import AuditLogRow
from vpnreg.registry.services.bindings import binding_entries


def test_a_subscriber_bound_draft_holds_the_subscriber_and_protocols_but_no_prefixes(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = flow.draft(
        session,
        world,
        config,
        clock.now(),
        [],
        subscriber_id="SUB-123",
        protocols=("wireguard", "openvpn"),
    )
    assert (app.bound_to, app.subscriber_id, app.prefixes) == ("subscriber", "SUB-123", ())
    assert app.subscriber_bound
    assert app.protocols == ("openvpn", "wireguard")
    created = session.scalars(
        select(AuditLogRow).where(AuditLogRow.action == "create_application")
    ).all()[-1]
    assert created.after["bound_to"] == "subscriber"
    assert created.after["subscriber_id"] == "SUB-123"
    assert created.after["protocols"] == ["openvpn", "wireguard"]


def test_a_prefix_bound_draft_is_recorded_as_before(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = flow.draft(session, world, config, clock.now(), [("203.0.113.0/26", [])])
    assert (app.bound_to, app.subscriber_id, app.protocols) == ("prefixes", None, ())
    created = session.scalars(
        select(AuditLogRow).where(AuditLogRow.action == "create_application")
    ).all()[-1]
    assert not {"bound_to", "subscriber_id", "protocols"} & set(created.after)


@pytest.mark.parametrize(
    ("prefixes", "subscriber_id", "protocols", "fields"),
    [
        pytest.param([("203.0.113.0/26", [])], "SUB-1", (), ["prefixes"], id="both"),
        pytest.param([], "bad id", (), ["subscriber_id"], id="bad-subscriber"),
        pytest.param([], None, (), ["prefixes"], id="neither"),
        pytest.param([], "SUB-1", ("telnet",), ["protocols"], id="bad-protocol"),
        pytest.param(
            [("10.0.0.0/24", [])], None, ("nope",), ["prefixes[0]", "protocols"], id="all-at-once"
        ),
    ],
)
def test_bad_scopes_are_refused_all_at_once(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    clock: FrozenClock,
    prefixes: list[tuple[str, list[str]]],
    subscriber_id: str | None,
    protocols: tuple[str, ...],
    fields: list[str],
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        flow.draft(
            session,
            world,
            config,
            clock.now(),
            prefixes,
            subscriber_id=subscriber_id,
            protocols=protocols,
        )
    assert [e.field for e in caught.value.errors] == fields


def test_one_subscriber_bound_registration_in_force_per_subscriber(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    first = flow.approved(session, world, config, now, [], subscriber_id="SUB-1")
    assert first.state == "active"
    second = flow.draft(session, world, config, now, [], subscriber_id="SUB-1")
    with pytest.raises(OverlapConflict, match="subscriber SUB-1 of Nayatel already has"):
        flow.act(
            "submit",
            session,
            application_id=second.id,
            actor=world.applicant,
            now=now,
            config=config,
        )
    # Another subscriber of the same ISP is no obstacle.
    flow.approved(session, world, config, now, [], subscriber_id="SUB-2")


def test_the_verify_step_of_a_subscriber_bound_application_is_the_isps(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    app = flow.draft(session, world, config, now, [], subscriber_id="SUB-9")
    kw = {"application_id": app.id, "now": now, "config": config}
    flow.act("submit", session, actor=world.applicant, **kw)  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        flow.act("verify", session, actor=world.other_isp_user, **kw)  # type: ignore[arg-type]
    verified = flow.act("verify", session, actor=world.isp_user, **kw)  # type: ignore[arg-type]
    assert verified.state == "isp_verified"


def test_live_bindings_of_registered_subscribers_become_entries(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    app = flow.approved(
        session, world, config, now, [], subscriber_id="SUB-1", protocols=("wireguard",)
    )
    assert app.valid_until is not None
    until = now + dt.timedelta(hours=2)
    report(
        session,
        world,
        config,
        now,
        ev("start", "SUB-1", "a", ports=(1024, 2047), until=until),
        ev("start", "SUB-1", "b", address="2001:db8:5::/56"),
        ev("start", "SUB-7", "c", address="198.51.100.9"),  # no registration: history only
    )
    entries = binding_entries(session, now=now, config=config)

    # Ends are whole seconds, rounded up: a gateway never ends a binding early.
    def ceiling(instant: dt.datetime) -> dt.datetime:
        return instant.replace(microsecond=0) + dt.timedelta(seconds=bool(instant.microsecond))

    assert entries == [
        AllowlistEntry(
            prefix=ipaddress.ip_network("198.51.100.7/32"),
            peers=(),
            registration_id=app.id,
            valid_until=ceiling(until),
            ports=(1024, 2047),
            protocols=frozenset({VpnProtocol.WIREGUARD}),
        ),
        AllowlistEntry(
            prefix=ipaddress.ip_network("2001:db8:5::/56"),
            peers=(),
            registration_id=app.id,
            valid_until=ceiling(now + dt.timedelta(hours=24)),
            protocols=frozenset({VpnProtocol.WIREGUARD}),
        ),
    ]
    # Both are in the allowlist the feed publishes, beside the prefix-bound entries.
    published = services.registered_entries(session, now=now, config=config)
    assert [e for e in published if e.registration_id == app.id] == entries
    # A stop takes its binding out at once; expiry takes the other out with time alone.
    later = now + dt.timedelta(minutes=1)
    report(session, world, config, later, ev("stop", "SUB-1", "a"))
    assert [e.prefix for e in binding_entries(session, now=later, config=config)] == [
        ipaddress.ip_network("2001:db8:5::/56")
    ]
    assert binding_entries(session, now=now + dt.timedelta(hours=24), config=config) == []


def test_a_binding_never_outlasts_its_registration(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    app = flow.approved(session, world, config, now, [], subscriber_id="SUB-1")
    assert app.valid_until is not None
    end = validity_end(app.valid_until, config.tz)
    near_end = end - dt.timedelta(hours=1)
    report(session, world, config, near_end, ev("start", "SUB-1", "a"))
    [entry] = binding_entries(session, now=near_end, config=config)
    assert entry.valid_until == end


def test_a_revoked_registration_lists_no_bindings(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    app = flow.approved(session, world, config, now, [], subscriber_id="SUB-1")
    report(session, world, config, now, ev("start", "SUB-1", "a"))
    assert len(binding_entries(session, now=now, config=config)) == 1
    flow.act(
        "revoke",
        session,
        application_id=app.id,
        actor=world.regulator,
        now=now,
        config=config,
        reason="test",
    )
    assert binding_entries(session, now=now, config=config) == []


def test_lookup_answers_for_bound_addresses_with_their_port_range(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    app = flow.approved(session, world, config, now, [], subscriber_id="SUB-1")
    until = now + dt.timedelta(hours=3)
    report(session, world, config, now, ev("start", "SUB-1", "a", ports=(1024, 2047), until=until))
    report(session, world, config, now, ev("start", "SUB-8", "b", ports=(2048, 3071)))

    def ask(port: int | None, at: dt.datetime = now) -> services.LookupResult:
        return services.lookup(session, address="198.51.100.7", now=at, config=config, port=port)

    inside = ask(1500)
    assert (inside.registered, inside.registration_id, inside.prefix) == (
        True,
        app.id,
        "198.51.100.7/32",
    )
    assert (inside.binding_ports, inside.binding_until) == ((1024, 2047), until)
    assert ask(None).registration_id == app.id  # no port asked: the address is bound
    assert ask(2048).registered is False  # SUB-8's block: bound, but not registered
    assert ask(1500, now + dt.timedelta(hours=3)).registered is False  # expired
    assert ask(1500, now - dt.timedelta(seconds=1)).registered is False  # not yet bound
    later = now + dt.timedelta(hours=1)
    report(session, world, config, later, ev("stop", "SUB-1", "a"))
    assert ask(1500, later).registered is False
    # ... but the history still answers for the time before the stop.
    assert ask(1500, later - dt.timedelta(seconds=1)).binding_until == later
    with pytest.raises(ValidationFailed, match="port"):
        ask(70_000)


def test_a_renewal_of_a_subscriber_bound_registration_keeps_its_subscriber(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    app = flow.approved(
        session, world, config, now, [], subscriber_id="SUB-1", protocols=("ipsec",)
    )
    renewal = flow.act(
        "renew", session, application_id=app.id, actor=world.applicant, now=now, config=config
    )
    assert (renewal.bound_to, renewal.subscriber_id, renewal.protocols) == (
        "subscriber",
        "SUB-1",
        ("ipsec",),
    )
    kw = {"application_id": renewal.id, "now": now, "config": config}
    flow.act("verify", session, actor=world.isp_user, **kw)  # type: ignore[arg-type]
    flow.act("endorse", session, actor=world.sector_user, **kw)  # type: ignore[arg-type]
    # The registration it renews is no second registration of the subscriber.
    approved = flow.act("approve", session, actor=world.regulator, **kw)  # type: ignore[arg-type]
    assert approved.state == "approved"


def test_a_prefix_bound_registrations_protocols_reach_its_entries(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    scoped = flow.approved(
        session, world, config, now, [("192.0.2.0/28", [])], protocols=("openvpn", "ipsec")
    )
    unscoped = flow.approved(session, world, config, now, [("192.0.2.16/28", [])])
    later = now + dt.timedelta(days=1)
    by_id = {
        e.registration_id: e for e in services.registered_entries(session, now=later, config=config)
    }
    assert by_id[scoped.id].protocols == frozenset({VpnProtocol.OPENVPN, VpnProtocol.IPSEC})
    assert by_id[unscoped.id].protocols == frozenset()  # empty: any protocol
