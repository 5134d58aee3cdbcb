"""The public lookup from memory: the registered set of the feed's last publish, indexed the way
the gateways index it (core.allowlist.AllowlistIndex), with each registration's public details.

`lookup.lookup` (SQL) stays the reference; a `LookupIndex` gives the same answer for a question
about now (ADR 0014, tests/registry/test_lookup_index.py), with no query per request:
- the feed's entries say which registrations cover an address, with their ports and their ends
  (the earlier of the registration's end and its binding's), so an entry that reached its end
  since the publish is ignored at once, as the SQL answer drops it;
- the public details (tracking number, category, last day, how the registration is bound) come
  from one query per feed state, made when the index is built.

What it cannot see is a change stored after the publish: the index is as fresh as the feed,
which the server publishes within `notify_gap_s` of a change made through it and within
`check_interval_s` of one made elsewhere. When a covering entry's registration has no details
(it left the registered states between the publish and the build), the index declines
(`None`) and the caller asks SQL.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.allowlist import AllowlistIndex
from vpnreg.core.bindings import port_covered
from vpnreg.core.feed import FeedHistory
from vpnreg.core.ipspace import Address
from vpnreg.core.policy import Registration
from vpnreg.core.review import REGISTERED_STATE_VALUES
from vpnreg.registry.models import Application, BoundTo
from vpnreg.registry.services.lookup import LookupResult

__all__ = ["LookupIndex", "LookupIndexHolder", "PublicDetails", "build_lookup_index"]


@dataclass(frozen=True)
class PublicDetails:
    """What the public lookup shows of a registration (never its organisation or subscriber)."""

    tracking_number: str | None
    category: str
    valid_until: dt.date
    #: Bound to a subscriber (its entries are an ISP's bindings), not to its own prefixes.
    subscriber_bound: bool


class LookupIndex:
    """One feed state's registered set and its registrations' public details (immutable)."""

    __slots__ = ("_details", "_index", "key")

    def __init__(
        self,
        key: tuple[str, int],
        index: AllowlistIndex,
        details: Mapping[int, PublicDetails],
    ) -> None:
        #: The feed state (session id, serial) it was built from.
        self.key = key
        self._index = index
        self._details = dict(details)

    def lookup(self, ip: Address, *, port: int | None, now: dt.datetime) -> LookupResult | None:
        """`lookup.lookup`'s answer at `now` for `ip` (and `port`), or None when this index
        cannot tell (then ask SQL)."""
        covering = [r for r in self._index.covering(ip) if _holds(r, now)]
        prefix_bound: list[tuple[Registration, PublicDetails]] = []
        bound: list[tuple[Registration, PublicDetails]] = []
        for registration in covering:
            details = self._details.get(registration.registration_id)
            if details is None:
                return None
            (bound if details.subscriber_bound else prefix_bound).append((registration, details))
        if prefix_bound:
            # SQL's order: the latest-starting prefix first, then by registration id
            registration, details = min(
                prefix_bound,
                key=lambda p: (-int(p[0].prefix.network_address), p[0].registration_id),
            )
            return LookupResult(
                ip=str(ip),
                registered=True,
                registration_id=registration.registration_id,
                tracking_number=details.tracking_number,
                category=details.category,
                valid_until=details.valid_until,
                prefix=str(registration.prefix),
            )
        # bindings sharing an address (CGNAT) never overlap in ports: the lowest range that
        # covers the port, as SQL orders them
        held = [(r, d) for r, d in bound if port_covered(r.ports, port)]
        if held:
            registration, details = min(held, key=lambda p: (p[0].ports[0], p[0].registration_id))
            return LookupResult(
                ip=str(ip),
                registered=True,
                registration_id=registration.registration_id,
                tracking_number=details.tracking_number,
                category=details.category,
                valid_until=details.valid_until,
                prefix=str(registration.prefix),
                binding_ports=registration.ports,
                binding_until=registration.valid_until,
            )
        return LookupResult(ip=str(ip), registered=False)


def _holds(registration: Registration, now: dt.datetime) -> bool:
    return registration.valid_until is None or now < registration.valid_until


def build_lookup_index(session: Session, history: FeedHistory) -> LookupIndex:
    """The index of `history`'s entries, with the public details of the registrations in the
    registered states now (one query, plain columns)."""
    index = AllowlistIndex.from_entries(history.entries)
    rows = session.execute(
        select(
            Application.id,
            Application.tracking_number,
            Application.category,
            Application.valid_until,
            Application.bound_to,
        ).where(Application.state.in_(REGISTERED_STATE_VALUES))
    ).all()
    details = {
        app_id: PublicDetails(
            tracking_number=tracking,
            category=category,
            valid_until=valid_until,
            subscriber_bound=bound_to == BoundTo.SUBSCRIBER.value,
        )
        for app_id, tracking, category, valid_until, bound_to in rows
        if valid_until is not None
    }
    return LookupIndex((history.session_id, history.serial), index, details)


class LookupIndexHolder:
    """The index of the feed state last asked about, rebuilt when the feed moves (thread-safe).

    Built after a publish only if lookups were answered since the last build (`asked`): a server
    nobody asks pays nothing, and one build serves every lookup until the next publish. The web
    app starts that build as soon as the serial moves (vpnreg.web.lookup), so lookups meanwhile
    answer from the index before it instead of waiting for the build."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index: LookupIndex | None = None
        #: Builds begun and not ended: a rebuild after a publish and a lookup's own build may
        #: overlap, and the first to end must not say that nothing is being built.
        self._builds = 0
        self._builds_lock = threading.Lock()
        self._asked = False

    def _count_build(self, step: int) -> None:
        with self._builds_lock:
            self._builds += step

    def building(self) -> LookupIndex | None:
        """While the index of a newer state is being built: the last one built (of an older
        state), for the callers that would otherwise queue behind that build; else None."""
        return self._index if self._builds else None

    def last(self) -> LookupIndex | None:
        """The last index built, of whatever state."""
        return self._index

    def note_asked(self) -> None:
        """A lookup was answered (or is about to be) from this holder."""
        self._asked = True

    def begin_rebuild(self) -> bool:
        """Called when the feed moved: True (and lookups answer from the index held until
        `current` has built the new one, which the caller must then call) if lookups were
        answered since the last build; False if nobody asked, so there is nothing to rebuild."""
        if not self._asked or self._index is None:
            return False
        self._asked = False
        self._count_build(1)
        return True

    def end_rebuild(self) -> None:
        """The rebuild begun ended (`current` returned or failed)."""
        self._count_build(-1)

    def held(self, key: tuple[str, int]) -> LookupIndex | None:
        """The index of the feed state `key` (session id, serial) if it is built already (no
        I/O), else None."""
        held = self._index
        if held is not None and held.key == key:
            return held
        return None

    def current(self, history: FeedHistory | None, session: Session) -> LookupIndex | None:
        """The index of `history` (built with `session` if it is not held yet); None before
        the first publish."""
        if history is None:
            return None
        key = (history.session_id, history.serial)
        held = self._index
        if held is not None and held.key == key:
            return held
        with self._lock:
            held = self._index
            if held is None or held.key != key:
                self._count_build(1)
                try:
                    held = build_lookup_index(session, history)
                finally:
                    self._count_build(-1)
                    # the session only read: end its transaction, so whatever the caller asks
                    # with it next sees the database as it is now
                    session.rollback()
                self._index = held
            return held
