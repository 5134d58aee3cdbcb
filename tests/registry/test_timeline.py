"""advance_time, lookup and registered_entries around the Karachi day boundary."""

from __future__ import annotations

import datetime as dt
import ipaddress

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.registry.conftest import KARACHI, World
from tests.registry.flow import act, approved
from vpnreg.clock import FrozenClock
from vpnreg.core.review import State, is_registered, validity_end
from vpnreg.registry import services
from vpnreg.registry.models import Claim


def test_renewal_moves_approved_active_expiring_expired(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    first = approved(session, world, config, clock.now(), [("198.51.100.0/24", [])], bank=True)
    assert first.state == "active"
    renewal = act(
        "renew",
        session,
        application_id=first.id,
        actor=world.bank_applicant,
        now=clock.now(),
        config=config,
    )
    assert (renewal.state, renewal.renews_id) == ("submitted", first.id)
    kw = {"application_id": renewal.id, "now": clock.now(), "config": config}
    act("verify", session, actor=world.isp_user, **kw)  # type: ignore[arg-type]
    renewal = act("approve", session, actor=world.regulator, **kw)  # type: ignore[arg-type]
    assert first.valid_until is not None
    end = validity_end(first.valid_until, KARACHI)
    # The renewal starts exactly where the first ends, so its claim did not conflict.
    assert (renewal.state, renewal.valid_from) == ("approved", end)
    assert renewal.valid_until == first.valid_until + dt.timedelta(days=365)

    clock.set(end - dt.timedelta(days=30))
    changes = services.advance_time(session, now=clock.now(), config=config)
    assert [(c.application_id, c.to_state) for c in changes] == [(first.id, State.EXPIRING)]
    assert services.advance_time(session, now=clock.now(), config=config) == []

    last_moment = end - dt.timedelta(microseconds=1)
    hit = services.lookup(session, address="198.51.100.9", now=last_moment, config=config)
    assert (hit.registered, hit.registration_id) == (True, first.id)
    clock.set(end)
    changes = services.advance_time(session, now=clock.now(), config=config)
    assert {(c.application_id, c.to_state) for c in changes} == {
        (first.id, State.EXPIRED),
        (renewal.id, State.ACTIVE),
    }
    hit = services.lookup(session, address="198.51.100.9", now=clock.now(), config=config)
    assert (hit.registered, hit.registration_id, hit.tracking_number) == (
        True,
        renewal.id,
        renewal.tracking_number,
    )
    claims = session.scalars(select(Claim.application_id)).all()
    assert claims == [renewal.id]


def test_lookup_and_entries_follow_is_registered_at_the_day_boundary(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = approved(
        session, world, config, clock.now(), [("192.0.2.0/24", ["198.51.100.7/32"])], bank=True
    )
    assert app.valid_until is not None and app.valid_from is not None
    end = validity_end(app.valid_until, KARACHI)
    # Local midnight in Karachi is 19:00 UTC the day before.
    assert end.hour == 19
    for at in (end - dt.timedelta(seconds=1), end, end + dt.timedelta(hours=1)):
        expected = is_registered(
            state=State(app.state),
            valid_from=app.valid_from,
            valid_until=app.valid_until,
            at=at,
            tz=KARACHI,
        )
        assert expected is (at < end)
        hit = services.lookup(session, address="192.0.2.200", now=at, config=config)
        assert hit.registered is expected
        entries = services.registered_entries(session, now=at, config=config)
        assert bool(entries) is expected
    entries = services.registered_entries(session, now=clock.now(), config=config)
    assert [(str(e.prefix), [str(p) for p in e.peers], e.registration_id) for e in entries] == [
        ("192.0.2.0/24", ["198.51.100.7/32"], app.id)
    ]
    # entry v2 (ADR 0006): the exclusive end is the registration's own end (Claim.valid_end),
    # for any port and any protocol
    (published,) = entries
    assert published.valid_until == end
    assert published.holds_at(end - dt.timedelta(seconds=1)) and not published.holds_at(end)
    assert (published.ports, published.protocols) == ((0, 65535), frozenset())
    stored = session.scalars(select(Claim.valid_end)).one()
    assert stored == end
    miss = services.lookup(session, address="203.0.113.1", now=clock.now(), config=config)
    assert (miss.registered, miss.registration_id) == (False, None)
    assert ipaddress.ip_address(miss.ip).version == 4
    assert session.scalar(select(func.count()).select_from(Claim)) == 1


def test_peer_amendment_holds_old_peers_until_approved(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = approved(
        session, world, config, clock.now(), [("192.0.2.0/24", ["198.51.100.7"])], bank=True
    )
    amendment = services.amend_peers(
        session,
        application_id=app.id,
        prefix="192.0.2.0/24",
        peers=["203.0.113.9"],
        actor=world.bank_applicant,
        now=clock.now(),
        config=config,
    )
    peers = lambda: [  # noqa: E731
        [str(p) for p in e.peers]
        for e in services.registered_entries(session, now=clock.now(), config=config)
    ]
    assert peers() == [["198.51.100.7/32"]]
    services.approve_amendment(
        session, amendment_id=amendment.id, actor=world.regulator, now=clock.now(), config=config
    )
    assert peers() == [["203.0.113.9/32"]]
    assert services.verify_audit(session) is None
