"""The registered set reuses the entries it built before (services.lookup's memo) only while
everything an entry is built from is unchanged: a registration's new last day, protocols or
peers give a new entry at the next computation. Both backends."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tests.registry import flow
from tests.registry.conftest import World
from vpnreg.clock import FrozenClock
from vpnreg.core.feed import AllowlistEntry
from vpnreg.core.protocols import VpnProtocol
from vpnreg.registry import services
from vpnreg.registry.models import Application, ApplicationPrefix, PrefixPeer
from vpnreg.registry.services.lookup import registered_table


def _entry(session: Session, config: services.ServiceConfig, now: dt.datetime) -> AllowlistEntry:
    (entry,) = registered_table(session, now=now, config=config).to_entries()
    return entry


def test_a_changed_registration_gets_a_new_entry(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    app = flow.approved(session, world, config, now, [("192.0.2.0/26", [])])
    first = _entry(session, config, now)
    assert _entry(session, config, now) == first  # unchanged: the same entry

    until = session.scalar(select(Application.valid_until).where(Application.id == app.id))
    assert until is not None
    session.execute(
        update(Application)
        .where(Application.id == app.id)
        .values(valid_until=until + dt.timedelta(days=30))
    )
    later = _entry(session, config, now)
    assert later.valid_until == first.valid_until + dt.timedelta(days=30)

    session.execute(
        update(Application).where(Application.id == app.id).values(protocols=["wireguard"])
    )
    assert _entry(session, config, now).protocols == frozenset({VpnProtocol("wireguard")})

    prefix_id = session.scalar(
        select(ApplicationPrefix.id).where(ApplicationPrefix.application_id == app.id)
    )
    assert prefix_id is not None
    session.add(
        PrefixPeer(
            prefix_id=prefix_id,
            peer="203.0.113.0/28",
            range_start="203.0.113.0",
            range_end="203.0.113.15",
        )
    )
    session.flush()
    assert [str(p) for p in _entry(session, config, now).peers] == ["203.0.113.0/28"]
    session.rollback()
