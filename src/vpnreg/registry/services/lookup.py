"""Questions about what is registered now: lookup of one address and the allowlist entries."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from vpnreg.core.feed import AllowlistEntry, EntryTable
from vpnreg.core.ipspace import Address, PrefixError, parse_address
from vpnreg.core.protocols import VpnProtocol
from vpnreg.core.review import REGISTERED_STATE_VALUES, State, is_registered, validity_end
from vpnreg.registry.claims import address_key
from vpnreg.registry.errors import FieldError, ValidationFailed
from vpnreg.registry.models import Application, ApplicationPrefix, PrefixPeer
from vpnreg.registry.services.bindings import binding_entries, binding_table, bound_holder
from vpnreg.registry.services.config import ServiceConfig

#: Entries built before, by everything they are built from (registration, prefix, last day,
#: protocols, peers, zone): the feed recomputes the whole registered set after every change,
#: and parsing every prefix again was most of a publish's time (bench_gateway_fanout). An
#: entry is immutable; a registration that changes any of these gets a new key.
_BUILT: dict[tuple[object, ...], AllowlistEntry] = {}
#: Beyond this many the memo starts again (a bound on memory, far above a national registry).
_BUILT_MAX = 500_000


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
    #: For an address held through an ISP's binding (a subscriber-bound registration): the
    #: binding's port range and end. Never the subscriber.
    binding_ports: tuple[int, int] | None = None
    binding_until: dt.datetime | None = None


def _registered(
    state: str,
    valid_from: dt.datetime | None,
    valid_until: dt.date | None,
    now: dt.datetime,
    tz: dt.tzinfo,
) -> bool:
    if valid_from is None or valid_until is None:
        return False
    return is_registered(
        state=State(state), valid_from=valid_from, valid_until=valid_until, at=now, tz=tz
    )


def lookup_query(address: str, port: int | None) -> Address:
    """The address asked about, parsed; ValidationFailed for a bad address or port."""
    if port is not None and not 0 <= port <= 65535:
        raise ValidationFailed(
            [FieldError("port", "invalid", "port must be within 0..65535", port)]
        )
    try:
        return parse_address(address)
    except PrefixError as exc:
        raise ValidationFailed(
            [FieldError("address", str(exc.code), exc.message, address)]
        ) from None


def lookup(
    session: Session,
    *,
    address: str,
    now: dt.datetime,
    config: ServiceConfig,
    port: int | None = None,
) -> LookupResult:
    """Is `address` inside a registration that is registered at `now` (core is_registered)?

    A prefix-bound registration covers every port. Otherwise an ISP's binding may hold the
    address for a subscriber-bound registration at `now`; with `port`, only a binding whose
    port range covers it counts.

    This is the reference answer; the public lookup answers "now" from the feed's index
    (lookup_index.LookupIndex), which a property test holds equal to this."""
    ip = lookup_query(address, port)
    key = address_key(ip)
    # Plain columns in one query: loading ORM objects would also load each registration's
    # organisation, ISP, prefixes and peers (their relationships load eagerly), four queries
    # for a public lookup that shows none of them.
    rows = session.execute(
        select(
            Application.id,
            Application.state,
            Application.valid_from,
            Application.valid_until,
            Application.tracking_number,
            Application.category,
            ApplicationPrefix.prefix,
        )
        .select_from(ApplicationPrefix)
        .join(Application, Application.id == ApplicationPrefix.application_id)
        .where(
            ApplicationPrefix.range_start <= key,
            ApplicationPrefix.range_end >= key,
            Application.state.in_(REGISTERED_STATE_VALUES),
        )
        .order_by(ApplicationPrefix.range_start.desc(), Application.id)
    ).all()
    for app_id, state, valid_from, valid_until, tracking_number, category, prefix in rows:
        if _registered(state, valid_from, valid_until, now, config.tz):
            return LookupResult(
                ip=str(ip),
                registered=True,
                registration_id=app_id,
                tracking_number=tracking_number,
                category=category,
                valid_until=valid_until,
                prefix=prefix,
            )
    held = bound_holder(session, address=ip, port=port, at=now, config=config)
    if held is not None:
        return LookupResult(
            ip=str(ip),
            registered=True,
            registration_id=held.registration_id,
            tracking_number=held.tracking_number,
            category=held.category,
            valid_until=held.valid_until,
            prefix=held.address,
            binding_ports=held.ports,
            binding_until=held.until,
        )
    return LookupResult(ip=str(ip), registered=False)


def registered_entries(
    session: Session, *, now: dt.datetime, config: ServiceConfig
) -> list[AllowlistEntry]:
    """The allowlist at `now`: one entry per prefix of every registered prefix-bound
    registration and one per live binding of every registered subscriber-bound one
    (`bindings.binding_table`), each with its registration's VPN protocols."""
    return _prefix_entries(session, now=now, config=config) + binding_entries(
        session, now=now, config=config
    )


def registered_table(session: Session, *, now: dt.datetime, config: ServiceConfig) -> EntryTable:
    """`registered_entries` as the table the feed publishes (the bindings straight as records,
    never as entry objects: there may be a hundred thousand)."""
    prefixes = EntryTable.from_entries(_prefix_entries(session, now=now, config=config))
    return prefixes.union(binding_table(session, now=now, config=config))


def prefix_table(
    session: Session, *, now: dt.datetime, config: ServiceConfig, registrations: Collection[int]
) -> EntryTable:
    """The entries at `now` of those of `registrations` that are registered and prefix-bound:
    `registered_table`'s prefix side for only these (the publisher's incremental step)."""
    if not registrations:
        return EntryTable.empty()
    return EntryTable.from_entries(
        _prefix_entries(session, now=now, config=config, registrations=registrations)
    )


def _prefix_entries(
    session: Session,
    *,
    now: dt.datetime,
    config: ServiceConfig,
    registrations: Collection[int] | None = None,
) -> list[AllowlistEntry]:
    """The entries of the registered prefix-bound registrations at `now` (with
    `registrations`: of those alone).

    Plain column reads (two queries), not ORM objects: the feed publishes after every change
    the portal makes, and loading every registration with its organisation, ISP, prefixes and
    peers held the GIL long enough to stall the requests served meanwhile.
    """
    chosen: ColumnElement[bool] = Application.state.in_(REGISTERED_STATE_VALUES)
    if registrations is not None:
        chosen = and_(chosen, Application.id.in_(sorted(registrations)))
    rows = session.execute(
        select(
            Application.id,
            Application.state,
            Application.valid_from,
            Application.valid_until,
            Application.protocols,
            ApplicationPrefix.id,
            ApplicationPrefix.prefix,
        )
        .join(ApplicationPrefix, ApplicationPrefix.application_id == Application.id)
        .where(chosen)
        .order_by(Application.id, ApplicationPrefix.position)
    ).all()
    kept = [
        (app_id, valid_until, protocols, prefix_id, prefix)
        for app_id, state, valid_from, valid_until, protocols, prefix_id, prefix in rows
        if valid_until is not None and _registered(state, valid_from, valid_until, now, config.tz)
    ]
    peers: dict[int, list[str]] = {}
    if kept:
        for prefix_id, peer in session.execute(
            select(PrefixPeer.prefix_id, PrefixPeer.peer)
            .join(ApplicationPrefix, ApplicationPrefix.id == PrefixPeer.prefix_id)
            .join(Application, Application.id == ApplicationPrefix.application_id)
            .where(chosen)
            .order_by(PrefixPeer.id)
        ):
            peers.setdefault(prefix_id, []).append(peer)
    if len(_BUILT) > _BUILT_MAX:
        _BUILT.clear()
    prefix_entries = []
    for app_id, valid_until, protocols, prefix_id, prefix in kept:
        allowed = tuple(protocols or ())
        peer_texts = tuple(peers.get(prefix_id, ()))
        key = (app_id, prefix, valid_until, allowed, peer_texts, config.tz)
        entry = _BUILT.get(key)
        if entry is None:
            entry = _BUILT[key] = AllowlistEntry(
                prefix=ipaddress.ip_network(prefix),
                peers=tuple(ipaddress.ip_network(p) for p in peer_texts),
                registration_id=app_id,
                # the exclusive end instant, as Claim.valid_end: the start of the day after the
                # last day in the regulator's zone; any port (ADR 0006)
                valid_until=validity_end(valid_until, config.tz),
                protocols=frozenset(VpnProtocol(p) for p in allowed),
            )
        prefix_entries.append(entry)
    return prefix_entries
