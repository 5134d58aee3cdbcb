"""Registry steps the feed tests need, on top of tests.registry.flow."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from tests.registry.conftest import World
from tests.registry.flow import approved
from vpnreg.core.feed import AllowlistEntry, EntryTable
from vpnreg.registry import services
from vpnreg.registry.models import Application


def bank_registration(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    now: dt.datetime,
    prefix: str,
    peers: list[str] | None = None,
) -> Application:
    """An approved (and so active) registration of the bank, which needs no endorsement."""
    return approved(session, world, config, now, [(prefix, peers or [])], bank=True)


def registered_table(
    session: Session, config: services.ServiceConfig, now: dt.datetime
) -> EntryTable:
    return EntryTable.from_entries(services.registered_entries(session, now=now, config=config))


def texts(entries: EntryTable | list[AllowlistEntry]) -> list[tuple[str, tuple[str, ...], int]]:
    """(prefix, peers, registration id) of each entry, sorted: easy to compare in asserts."""
    return sorted(
        (str(e.prefix), tuple(str(p) for p in e.peers), e.registration_id) for e in entries
    )
