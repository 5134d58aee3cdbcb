"""Bindings an ISP reports for its subscribers: storing events, and the live ones as entries.

`report_events` is the one path every interface stores bindings through (the JSON API and the
RADIUS accounting server). One call is one transaction with one audit event, whatever the
number of events: the audit head moves, so the feed publisher looks again (feed_changes).

Writers of bindings are serialised, so the overlap check of one call sees every binding stored
before it: on SQLite by the write unit's BEGIN IMMEDIATE (services.transaction), on PostgreSQL
by a transaction-scoped advisory lock taken first in the unit.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    Table,
    bindparam,
    insert,
    select,
    text,
    tuple_,
)
from sqlalchemy.orm import Session

from vpnreg.core.bindings import (
    MAX_EVENTS_PER_REPORT,
    BindingError,
    BindingEvent,
    CheckedEvent,
    EventKind,
    EventResult,
    bindings_collide,
    check_event,
    port_covered,
)
from vpnreg.core.feed import AllowlistEntry, EntryTable
from vpnreg.core.feed.entry import ANY_PORTS, FAMILY_V4, FAMILY_V6, protocol_bits, seconds
from vpnreg.core.ipspace import Address, Network, PrefixPolicy
from vpnreg.core.protocols import VpnProtocol
from vpnreg.core.review import REGISTERED_STATE_VALUES, Role, State, is_registered, validity_end
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.claims import address_key, range_keys
from vpnreg.registry.errors import FieldError, Forbidden, NotFound, ValidationFailed
from vpnreg.registry.models import ISP, Application, Binding, BoundTo
from vpnreg.registry.services.actors import Actor, actor_name, actor_role
from vpnreg.registry.services.binding_index import HeldBinding, LiveIndex
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.transaction import service_transaction

__all__ = [
    "REPORT_ACTION",
    "BoundHolder",
    "binding_entries",
    "binding_table",
    "bound_holder",
    "report_events",
    "subscriber_registrations",
]

#: The audit action of a report of binding events (API or RADIUS alike).
REPORT_ACTION = "report_bindings"

#: The PostgreSQL advisory lock key that serialises writers of bindings ("vpnbind" in ASCII).
_ADVISORY_KEY = 0x76706E62696E64
#: Keys looked up per query when loading the bindings a report names.
_LOOKUP_BATCH = 500

#: A binding belongs to the registration of the same ISP's same subscriber (the join condition).
_OF_THE_SUBSCRIBER = (Application.isp_id == Binding.isp_id) & (
    Application.subscriber_id == Binding.subscriber_id
)


def _require_isp(session: Session, actor: Actor, isp_id: int) -> None:
    """A user reports only for its own ISP; a string actor (RADIUS, CLI) is trusted."""
    if not isinstance(actor, str):
        role = actor_role(actor)
        if role is not Role.ISP:
            raise Forbidden(f"{actor.username} ({role}) may not report bindings; it needs isp")
        if actor.isp_id != isp_id:
            raise Forbidden(f"{actor.username} is not a user of ISP {isp_id}")
    if session.get(ISP, isp_id) is None:
        raise NotFound("ISP", isp_id)


def _serialise_writers(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})


def _ports(lo: int | None, hi: int | None) -> tuple[int, int] | None:
    return None if lo is None or hi is None else (lo, hi)


def _ports_of(row: Binding) -> tuple[int, int] | None:
    return _ports(row.port_lo, row.port_hi)


def _describe(network: Network, ports: tuple[int, int] | None) -> str:
    return str(network) if ports is None else f"{network} ports [{ports[0]}, {ports[1]}]"


def _load_existing(
    session: Session, isp_id: int, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Binding]:
    """The stored bindings of the ISP named by (subscriber id, session id) `keys`."""
    wanted = sorted(set(keys))
    # On PostgreSQL the values are rendered into the statement (quoted by SQLAlchemy's literal
    # processor for strings), not sent as parameters: psycopg prepares a statement it sees again
    # and PostgreSQL then keeps one generic plan, which for a table that grew since its last
    # ANALYZE compared every row of the ISP with every key (seconds per report). Constant lists
    # are planned per report and matched through a hash.
    literal = session.get_bind().dialect.name == "postgresql"
    found: dict[tuple[str, str], Binding] = {}
    for i in range(0, len(wanted), _LOOKUP_BATCH):
        batch = wanted[i : i + _LOOKUP_BATCH]
        subscribers: BindParameter[list[str]] = bindparam(
            "subscribers", sorted({s for s, _ in batch}), expanding=True, literal_execute=literal
        )
        sessions: BindParameter[list[str]] = bindparam(
            "sessions", sorted({s for _, s in batch}), expanding=True, literal_execute=literal
        )
        rows = session.scalars(
            select(Binding).where(
                Binding.isp_id == isp_id,
                Binding.subscriber_id.in_(subscribers),
                # An expression, not the bare column: with both lists on index columns SQLite
                # searched the unique index for every (subscriber, session) combination, a
                # quarter of a million searches per 500 keys. Now it searches per subscriber
                # and checks the session of each row found.
                (Binding.session_id + "").in_(sessions),
            )
        )
        pairs = set(batch)
        for row in rows:
            key = (row.subscriber_id, row.session_id)
            if key in pairs:
                found[key] = row
    return found


def widest_start(network: Network, policy: PrefixPolicy) -> str:
    """The lowest range_start a stored binding overlapping `network` can have.

    Stored bindings are no broader than the policy allows (/max_v4, /max_v6), so one that
    overlaps `network` starts at most one such block before it: with this bound a range_start
    scan stays short instead of reading every lower binding."""
    limit = policy.max_v4 if network.version == 4 else policy.max_v6
    widest = 1 << (network.max_prefixlen - limit)
    first = max(0, int(network.network_address) - (widest - 1))
    return address_key(type(network.network_address)(first))


def _live(row: Binding, now: dt.datetime) -> bool:
    return row.ended_at is None and row.valid_until > now


def _still_held(row: Binding | None, now: dt.datetime) -> bool:
    """A stored binding that holds its address (live), or never will again (stopped)."""
    return row is not None and (row.ended_at is not None or row.valid_until > now)


@dataclass
class _Counts:
    created: int = 0
    renewed: int = 0
    stopped: int = 0
    unchanged: int = 0
    refused: int = 0


@dataclass
class _Report:
    """One call's state: the ISP, the time, the bindings it names and the live ones near."""

    session: Session
    isp_id: int
    now: dt.datetime
    policy: PrefixPolicy
    existing: dict[tuple[str, str], Binding]
    index: LiveIndex
    counts: _Counts = field(default_factory=_Counts)
    #: Rows this report created or changed (stamped with its audit sequence at the end).
    changed: list[Binding] = field(default_factory=list)
    #: Rows this report created: not added to the session, inserted at the end in one
    #: executemany (the ORM's insert returns every new id, which cost most of a report).
    created: list[Binding] = field(default_factory=list)

    def still_live(self, held: HeldBinding) -> bool:
        """Whether an indexed binding still holds: a stop earlier in this report ends it."""
        if held.isp_id == self.isp_id:
            row = self.existing.get((held.subscriber_id, held.session_id))
            if row is not None:
                return _live(row, self.now)
        return held.valid_until > self.now

    def collision(self, event: CheckedEvent) -> HeldBinding | None:
        """A live binding of another subscriber overlapping the event (address and ports)."""
        start, end = range_keys(event.network)
        lowest = widest_start(event.network, self.policy)
        for held in self.index.near(lowest_start=lowest, start=start, end=end, ports=event.ports):
            if held.isp_id == self.isp_id and held.subscriber_id == event.subscriber_id:
                continue
            if bindings_collide(
                (event.network, event.ports), (held.network, held.ports)
            ) and self.still_live(held):
                return held
        return None

    def hold(self, row: Binding, event: CheckedEvent) -> None:
        self.index.add(
            HeldBinding(
                row.range_start,
                row.range_end,
                self.isp_id,
                event.subscriber_id,
                event.session_id,
                event.network,
                event.ports,
                row.valid_until,
            )
        )

    def apply(self, event: CheckedEvent) -> EventResult:
        counts, now = self.counts, self.now
        key = (event.subscriber_id, event.session_id)
        row = self.existing.get(key)
        if row is not None and event.kind is not EventKind.STOP:
            stored = (ipaddress.ip_network(row.address), _ports_of(row))
            if stored != (event.network, event.ports):
                counts.refused += 1
                return EventResult.refused(
                    f"session {event.session_id} of subscriber {event.subscriber_id} is bound "
                    f"to {_describe(*stored)}, not {_describe(event.network, event.ports)}"
                )
        if row is not None and row.ended_at is not None:
            # A late or retransmitted event of a session that has stopped: stopped it stays.
            counts.unchanged += 1
            return EventResult.stored()
        if event.kind is EventKind.STOP:
            if row is None:
                # A stop whose start never arrived: kept as history, and it keeps a late start
                # of the same session from binding the address again.
                row = _new_row(self.isp_id, event, now, valid_until=now)
                row.ended_at = now
                self.created.append(row)
                self.existing[key] = row
            else:
                row.ended_at = now
                row.updated_at = now
            self.changed.append(row)
            counts.stopped += 1
            return EventResult.stored()
        if row is None or not _live(row, now):
            other = self.collision(event)
            if other is not None:
                counts.refused += 1
                return EventResult.refused(
                    f"{_describe(event.network, event.ports)} overlaps a live binding of another "
                    f"subscriber ({_describe(other.network, other.ports)} until "
                    f"{other.valid_until.isoformat()}); the earlier binding stands"
                )
        if row is None:
            row = _new_row(self.isp_id, event, now, valid_until=event.valid_until)
            self.created.append(row)
            self.existing[key] = row
            self.hold(row, event)
            self.changed.append(row)
            counts.created += 1
            return EventResult.stored()
        if not _live(row, now):
            self.hold(row, event)  # an expired binding renewed: it holds its address again
        if event.valid_until > row.valid_until:
            row.valid_until = event.valid_until
            row.updated_at = now
            self.changed.append(row)
            counts.renewed += 1
        else:
            counts.unchanged += 1
        return EventResult.stored()


_TABLE = cast(Table, Binding.__table__)
_COLUMNS = tuple(c.key for c in _TABLE.columns if c.key != "id")


def _values(row: Binding) -> dict[str, object]:
    """A new row's column values, for the bulk insert."""
    return {key: getattr(row, key) for key in _COLUMNS}


def _new_row(
    isp_id: int, event: CheckedEvent, now: dt.datetime, *, valid_until: dt.datetime
) -> Binding:
    start, end = range_keys(event.network)
    return Binding(
        isp_id=isp_id,
        subscriber_id=event.subscriber_id,
        session_id=event.session_id,
        address=str(event.network),
        range_start=start,
        range_end=end,
        port_lo=None if event.ports is None else event.ports[0],
        port_hi=None if event.ports is None else event.ports[1],
        valid_from=now,
        valid_until=valid_until,
        created_at=now,
        updated_at=now,
    )


def report_events(
    session: Session,
    *,
    actor: Actor,
    isp_id: int,
    events: Sequence[BindingEvent],
    now: dt.datetime,
    config: ServiceConfig,
) -> list[EventResult]:
    """Store the ISP's binding events in order; one result per event, in the same order.

    Idempotent per (subscriber id, session id): a start or interim renews the binding to the
    later end, a stop ends it at `now`, and a repeated event changes nothing. A start (or an
    interim of an unknown session) that overlaps a live binding of another subscriber in
    address and ports is refused; the earlier binding stands. Refusals are per event; the call
    itself fails only for the caller (Forbidden, NotFound) or a report of more than
    MAX_EVENTS_PER_REPORT events (ValidationFailed), and then nothing is stored.
    """
    if len(events) > MAX_EVENTS_PER_REPORT:
        raise ValidationFailed(
            [
                FieldError(
                    "events",
                    "too_many",
                    f"a report holds at most {MAX_EVENTS_PER_REPORT} events, not {len(events)}",
                )
            ]
        )
    with service_transaction(session):
        _require_isp(session, actor, isp_id)
        _serialise_writers(session)
        checked: list[CheckedEvent | BindingError] = []
        known: dict[str, Network | BindingError] = {}
        for event in events:
            try:
                checked.append(
                    check_event(event, now=now, policy=config.prefix_policy, known=known)
                )
            except BindingError as exc:
                checked.append(exc)
        valid = [c for c in checked if isinstance(c, CheckedEvent)]
        existing = _load_existing(session, isp_id, ((c.subscriber_id, c.session_id) for c in valid))
        policy = config.prefix_policy
        # Only events that may bind an address anew need the live bindings around it: a
        # renewal of a live binding or a stop checks nothing.
        spans = [
            (widest_start(c.network, policy), *range_keys(c.network))
            for c in valid
            if c.kind is not EventKind.STOP
            and not _still_held(existing.get((c.subscriber_id, c.session_id)), now)
        ]
        report = _Report(
            session, isp_id, now, policy, existing, LiveIndex.load(session, spans, now)
        )
        results = [
            EventResult.refused(item.message)
            if isinstance(item, BindingError)
            else report.apply(item)
            for item in checked
        ]
        counts = report.counts
        counts.refused += sum(isinstance(item, BindingError) for item in checked)
        with session.no_autoflush:  # the changed rows are written once, stamped (below)
            record = append_event(
                session,
                time=now,
                actor=actor_name(actor),
                action=REPORT_ACTION,
                object_type="isp",
                object_id=isp_id,
                after={"events": len(events), **vars(counts)},
            )
        # The feed publisher recomputes only the subscribers changed past the audit sequence
        # it last published at (feed_increment); this stamp is how it finds them.
        for row in report.changed:
            row.changed_seq = record.seq
        if report.created:
            # the table, not the entity: the ORM would split the rows wherever a NULL moves
            session.execute(insert(_TABLE), [_values(row) for row in report.created])
        session.flush()
    return results


def binding_table(
    session: Session,
    *,
    now: dt.datetime,
    config: ServiceConfig,
    subscribers: CompoundSelect[int, str] | None = None,
) -> EntryTable:
    """The live bindings at `now` of subscribers with a subscriber-bound registration in force,
    as allowlist entries (ADR 0006): the bound address with its port range (any when the
    binding has none), the registration's protocols, and as end the earlier of the binding's
    and the registration's (the start of the day after its last day, in the regulator's zone),
    in whole seconds. Bindings stored through `report_events` already end on a whole second
    (core.bindings checks `until` to one); a row written any other way (a bulk load) is rounded
    up, never down, so that a gateway never ends it early.

    A binding of a subscriber without such a registration is history only: no entry. With
    `subscribers` (a query of (ISP id, subscriber id) rows), only theirs: the publisher's
    incremental step, whose set of changed subscribers stays in the database.

    Built as record columns (EntryTable.from_columns), not entry objects: the feed computes
    this for tens of thousands of bindings, and the stored range key already is the record's
    address (IPv4 mapped).
    """
    query = (
        select(
            Binding.address,
            Binding.range_start,
            Binding.port_lo,
            Binding.port_hi,
            Binding.valid_until,
            Application.id,
            Application.state,
            Application.valid_from,
            Application.valid_until,
            Application.protocols,
        )
        .join(Application, _OF_THE_SUBSCRIBER)
        .where(
            Application.bound_to == BoundTo.SUBSCRIBER.value,
            Application.state.in_(REGISTERED_STATE_VALUES),
            Binding.ended_at.is_(None),
            Binding.valid_from <= now,
            Binding.valid_until > now,
        )
    )
    if subscribers is not None:
        query = query.where(tuple_(Binding.isp_id, Binding.subscriber_id).in_(subscribers))
    family: list[int] = []
    address: list[bytes] = []
    length: list[int] = []
    registration: list[int] = []
    until_s: list[int] = []
    port_lo: list[int] = []
    port_hi: list[int] = []
    bits: list[int] = []
    registered = functools.lru_cache(maxsize=4096)(
        lambda state, start, end: is_registered(
            state=State(state), valid_from=start, valid_until=end, at=now, tz=config.tz
        )
    )
    ends = functools.lru_cache(maxsize=4096)(lambda day: validity_end(day, config.tz))
    for (
        written,
        key,
        lo,
        hi,
        until,
        app_id,
        state,
        app_from,
        app_until,
        protocols,
    ) in session.execute(query):
        if app_from is None or app_until is None or not registered(state, app_from, app_until):
            continue
        family.append(FAMILY_V6 if ":" in written else FAMILY_V4)
        address.append(bytes.fromhex(key))
        length.append(int(written.rpartition("/")[2]))
        registration.append(app_id)
        until_s.append(seconds(whole_second_ceiling(min(until, ends(app_until)))))
        port_lo.append(ANY_PORTS[0] if lo is None or hi is None else lo)
        port_hi.append(ANY_PORTS[1] if lo is None or hi is None else hi)
        bits.append(_protocol_bits(tuple(protocols or ())))
    return EntryTable.from_columns(
        family=family,
        address=np.frombuffer(b"".join(address), dtype=np.uint8).reshape(-1, 16),
        prefix_len=length,
        registration_id=registration,
        valid_until_s=until_s,
        port_lo=port_lo,
        port_hi=port_hi,
        protocols=bits,
    )


@functools.lru_cache(maxsize=256)
def _protocol_bits(names: tuple[str, ...]) -> int:
    return protocol_bits(VpnProtocol(name) for name in names)


def binding_entries(
    session: Session, *, now: dt.datetime, config: ServiceConfig
) -> list[AllowlistEntry]:
    """`binding_table` as entry values, in the table's canonical order."""
    return binding_table(session, now=now, config=config).to_entries()


def subscriber_registrations(session: Session, subscribers: CompoundSelect[int, str]) -> set[int]:
    """The ids of the subscriber-bound registrations (any state) of `subscribers` (a query of
    (ISP id, subscriber id) rows): every registration whose entries their bindings can make."""
    return set(
        session.scalars(
            select(Application.id).where(
                Application.bound_to == BoundTo.SUBSCRIBER.value,
                tuple_(Application.isp_id, Application.subscriber_id).in_(subscribers),
            )
        )
    )


def whole_second_ceiling(instant: dt.datetime) -> dt.datetime:
    """`instant` rounded up to a whole second (allowlist ends have second resolution)."""
    if instant.microsecond:
        return instant.replace(microsecond=0) + dt.timedelta(seconds=1)
    return instant


@dataclass(frozen=True)
class BoundHolder:
    """The subscriber-bound registration holding an address at a moment, through a binding."""

    registration_id: int
    tracking_number: str | None
    category: str
    valid_until: dt.date
    address: str
    ports: tuple[int, int]
    #: The binding's end (exclusive), capped by the registration's.
    until: dt.datetime


def bound_holder(
    session: Session,
    *,
    address: Address,
    port: int | None,
    at: dt.datetime,
    config: ServiceConfig,
) -> BoundHolder | None:
    """Which registration holds `address` at `at` through a binding
    (with `port`: one whose port range covers it), or None.

    A binding holds from its start until its end or its stop; its registration must be in force
    at `at` as well."""
    key = address_key(address)
    lowest = widest_start(ipaddress.ip_network(address), config.prefix_policy)
    rows = session.execute(
        select(
            Binding.address,
            Binding.port_lo,
            Binding.port_hi,
            Binding.valid_until,
            Binding.ended_at,
            Application.id,
            Application.state,
            Application.valid_from,
            Application.valid_until,
            Application.tracking_number,
            Application.category,
        )
        .join(Application, _OF_THE_SUBSCRIBER)
        .where(
            Binding.range_start <= key,
            Binding.range_start >= lowest,
            Binding.range_end >= key,
            Binding.valid_from <= at,
            Binding.valid_until > at,
            Binding.ended_at.is_(None) | (Binding.ended_at > at),
            Application.bound_to == BoundTo.SUBSCRIBER.value,
            Application.state.in_(REGISTERED_STATE_VALUES),
        )
        .order_by(Binding.port_lo, Binding.id)
    ).all()
    for held, lo, hi, until, ended, app_id, state, app_from, app_until, tracking, cat in rows:
        ports = _ports(lo, hi)
        if not port_covered(ports, port) or app_from is None or app_until is None:
            continue
        if not is_registered(
            state=State(state), valid_from=app_from, valid_until=app_until, at=at, tz=config.tz
        ):
            continue
        end = min(until, validity_end(app_until, config.tz))
        if ended is not None:
            end = min(end, ended)
        return BoundHolder(
            registration_id=app_id,
            tracking_number=tracking,
            category=cat,
            valid_until=app_until,
            address=held,
            ports=ports or ANY_PORTS,
            until=end,
        )
    return None
