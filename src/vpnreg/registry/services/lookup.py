"""Questions about what is registered now: lookup of one address and the allowlist entries."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.feed import AllowlistEntry
from vpnreg.core.ipspace import Network, PrefixError, parse_address
from vpnreg.core.review import REGISTERED_STATES, State, is_registered
from vpnreg.registry.claims import address_key
from vpnreg.registry.errors import FieldError, ValidationFailed
from vpnreg.registry.models import Application, ApplicationPrefix
from vpnreg.registry.services.config import ServiceConfig

_REGISTERED = tuple(s.value for s in REGISTERED_STATES)


@dataclass(frozen=True)
class LookupResult:
    """Whether `ip` is registered at the asked time, and by which registration."""

    ip: str
    registered: bool
    registration_id: int | None = None
    tracking_number: str | None = None
    category: str | None = None
    valid_until: dt.date | None = None
    prefix: str | None = None


def _registered(app: Application, now: dt.datetime, tz: dt.tzinfo) -> bool:
    if app.valid_from is None or app.valid_until is None:
        return False
    return is_registered(
        state=State(app.state),
        valid_from=app.valid_from,
        valid_until=app.valid_until,
        at=now,
        tz=tz,
    )


def lookup(
    session: Session, *, address: str, now: dt.datetime, config: ServiceConfig
) -> LookupResult:
    """Is `address` inside a registration that is registered at `now` (core is_registered)?"""
    try:
        ip = parse_address(address)
    except PrefixError as exc:
        raise ValidationFailed(
            [FieldError("address", str(exc.code), exc.message, address)]
        ) from None
    key = address_key(ip)
    rows = session.execute(
        select(ApplicationPrefix, Application)
        .join(Application, Application.id == ApplicationPrefix.application_id)
        .where(
            ApplicationPrefix.range_start <= key,
            ApplicationPrefix.range_end >= key,
            Application.state.in_(_REGISTERED),
        )
        .order_by(ApplicationPrefix.range_start.desc(), Application.id)
    ).all()
    for prefix, app in rows:
        if _registered(app, now, config.tz):
            return LookupResult(
                ip=str(ip),
                registered=True,
                registration_id=app.id,
                tracking_number=app.tracking_number,
                category=app.category,
                valid_until=app.valid_until,
                prefix=prefix.prefix,
            )
    return LookupResult(ip=str(ip), registered=False)


def registered_entries(
    session: Session, *, now: dt.datetime, config: ServiceConfig
) -> list[AllowlistEntry]:
    """The allowlist at `now`: one entry per prefix of every registered registration."""
    apps = session.scalars(
        select(Application).where(Application.state.in_(_REGISTERED)).order_by(Application.id)
    ).all()
    entries: list[AllowlistEntry] = []
    for app in apps:
        if not _registered(app, now, config.tz) or app.valid_until is None:
            continue
        for prefix in app.prefixes:
            peers: tuple[Network, ...] = tuple(ipaddress.ip_network(p.peer) for p in prefix.peers)
            entries.append(
                AllowlistEntry(
                    prefix=ipaddress.ip_network(prefix.prefix),
                    peers=peers,
                    registration_id=app.id,
                    valid_until=app.valid_until,
                )
            )
    return entries
