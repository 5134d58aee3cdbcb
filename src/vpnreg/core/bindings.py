"""Subscriber bindings: the events an ISP reports, their validation and the CGNAT overlap rule.

A binding says that the ISP's subscriber (the account id of the line) holds an address or a
prefix, optionally only a port block of it (RFC 7422 style carrier-grade NAT), until a time. An
ISP reports `start`, `interim` (renews) and `stop` events; the same (subscriber id, session id)
names the same binding, so a retransmitted event changes nothing.

Pure: the caller passes the time (`now`) and the prefix policy in.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from vpnreg.core.excerpt import quoted

# The whole port space (the feed entry's default): a binding without a port block covers it all.
from vpnreg.core.feed.entry import ANY_PORTS
from vpnreg.core.ipspace import Network, PrefixError, PrefixPolicy, overlaps, validate_prefix
from vpnreg.core.protocols import MODE_PROTOCOLS, VpnProtocol

#: A binding lasts at most this long after the event that started or renewed it.
MAX_BINDING_LIFETIME = dt.timedelta(hours=24)
#: Events one report may carry (the API answers 413 beyond).
MAX_EVENTS_PER_REPORT = 10_000

# An ISP's account id: letters, digits and a few separators, starting with a letter or digit,
# 1..64 characters. No spaces or control characters: it is shown, logged and matched exactly.
_SUBSCRIBER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+\-]{0,63}$")
# A session id (RADIUS Acct-Session-Id or the ISP's own): printable ASCII, no spaces.
_SESSION_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")


class EventKind(StrEnum):
    """What an ISP reports about a session."""

    START = "start"
    INTERIM = "interim"
    STOP = "stop"


class BindingError(ValueError):
    """An event (or one of its fields) that cannot be accepted; str() is a one-line message."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class BindingEvent:
    """One event as reported (API body or RADIUS packet), not yet checked."""

    event: str
    subscriber_id: str
    session_id: str
    address: str
    ports: tuple[int, int] | None = None
    until: dt.datetime | None = None


@dataclass(frozen=True)
class EventResult:
    """What became of one event: stored (or already stored), or refused and why."""

    status: Literal["stored", "refused"]
    error: str | None = None

    @classmethod
    def stored(cls) -> EventResult:
        return cls("stored")

    @classmethod
    def refused(cls, error: str) -> EventResult:
        return cls("refused", error)


@dataclass(frozen=True)
class CheckedEvent:
    """An event that passed every check: its network, its ports and its end time."""

    kind: EventKind
    subscriber_id: str
    session_id: str
    network: Network
    ports: tuple[int, int] | None
    valid_until: dt.datetime


def check_subscriber_id(value: object, field: str = "subscriber_id") -> str:
    """The ISP's account id as given, or BindingError (1..64 letters, digits, `._:@/+-`)."""
    if not isinstance(value, str) or not _SUBSCRIBER_ID_RE.match(value):
        shown = quoted(value) if isinstance(value, str) else type(value).__name__
        raise BindingError(
            field,
            f"{field} {shown} is not a subscriber id: 1 to 64 letters, digits or ._:@/+- "
            "(starting with a letter or digit)",
        )
    return value


def check_session_id(value: object) -> str:
    if not isinstance(value, str) or not _SESSION_ID_RE.match(value):
        shown = quoted(value) if isinstance(value, str) else type(value).__name__
        raise BindingError(
            "session_id",
            f"session_id {shown} is not a session id: 1 to 128 printable characters, no spaces",
        )
    return value


def check_ports(value: object) -> tuple[int, int] | None:
    """(lo, hi) with 0 <= lo <= hi <= 65535, or None (the whole address)."""
    if value is None:
        return None
    if (
        not isinstance(value, tuple | list)
        or len(value) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in value)
    ):
        raise BindingError("ports", "ports must be a pair of integers [lo, hi]")
    lo, hi = int(value[0]), int(value[1])
    if not 0 <= lo <= hi <= 65535:
        raise BindingError("ports", f"ports [{lo}, {hi}] must satisfy 0 <= lo <= hi <= 65535")
    return lo, hi


def check_until(until: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """The binding's exclusive end, whole seconds: `until`, or 24 h after `now` when not given.

    Refused: a naive time, a time not after `now`, a time more than 24 h after `now`."""
    latest = _whole_seconds(now + MAX_BINDING_LIFETIME)
    if until is None:
        return latest
    if until.tzinfo is None or until.utcoffset() is None:
        raise BindingError("until", "until must carry a time zone offset (RFC 3339)")
    end = _whole_seconds(until.astimezone(dt.UTC))
    if end <= now:
        raise BindingError("until", f"until {end.isoformat()} is not in the future")
    if end > latest:
        raise BindingError(
            "until", f"until {end.isoformat()} is more than 24 hours ahead (latest {latest})"
        )
    return end


def _whole_seconds(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(microsecond=0)


def check_address(text: object, policy: PrefixPolicy) -> Network:
    """A binding's address or prefix under the registrations' prefix policy (no private,
    special-purpose or too-broad space); a bare address is a /32 or /128."""
    if not isinstance(text, str):
        raise BindingError("address", "address must be an IP address or prefix")
    try:
        return validate_prefix(text, policy)
    except PrefixError as exc:
        raise BindingError("address", f"address: {exc.message}") from None


def check_event(
    event: BindingEvent,
    *,
    now: dt.datetime,
    policy: PrefixPolicy,
    known: MutableMapping[str, Network | BindingError] | None = None,
) -> CheckedEvent:
    """Every field of `event` checked against `policy` at `now`, or the first BindingError.

    `known` (the caller's, for one batch of events) remembers each address text's outcome: a
    report names the same shared addresses again and again."""
    try:
        kind = EventKind(event.event)
    except ValueError:
        shown = quoted(event.event) if isinstance(event.event, str) else "?"
        raise BindingError("event", f"event {shown} is not one of start, interim, stop") from None
    subscriber_id = check_subscriber_id(event.subscriber_id)
    session_id = check_session_id(event.session_id)
    network = _address_of(event.address, policy, known)
    ports = check_ports(event.ports)
    valid_until = check_until(event.until, now)
    return CheckedEvent(kind, subscriber_id, session_id, network, ports, valid_until)


def _address_of(
    text: object, policy: PrefixPolicy, known: MutableMapping[str, Network | BindingError] | None
) -> Network:
    if known is None or not isinstance(text, str):
        return check_address(text, policy)
    found = known.get(text)
    if found is None:
        try:
            found = check_address(text, policy)
        except BindingError as exc:
            found = exc
        known[text] = found
    if isinstance(found, BindingError):
        raise found
    return found


def ports_overlap(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    lo_a, hi_a = a or ANY_PORTS
    lo_b, hi_b = b or ANY_PORTS
    return lo_a <= hi_b and lo_b <= hi_a


def bindings_collide(
    a: tuple[Network, tuple[int, int] | None], b: tuple[Network, tuple[int, int] | None]
) -> bool:
    """The CGNAT rule: two bindings collide when their address space and port ranges overlap.

    Only bindings of different subscribers are compared (a subscriber may hold an address
    twice, e.g. a new session before the old one's stop)."""
    (net_a, ports_a), (net_b, ports_b) = a, b
    return overlaps(net_a, net_b) and ports_overlap(ports_a, ports_b)


def port_covered(ports: tuple[int, int] | None, port: int | None) -> bool:
    """Whether a binding's port range covers `port`; a question naming no port (None) is
    answered by any binding of the address, whatever its range."""
    if ports is None or port is None:
        return True
    return ports[0] <= port <= ports[1]


def parse_protocols(values: object, field: str = "protocols") -> tuple[VpnProtocol, ...]:
    """A registration's VPN protocols, canonical order, no duplicates; empty means any."""
    if not isinstance(values, list | tuple):
        raise BindingError(field, f"{field} must be a list of protocol names")
    names = {p.value for p in MODE_PROTOCOLS}
    chosen: set[VpnProtocol] = set()
    for value in values:
        if not isinstance(value, str) or value not in names:
            shown = quoted(value) if isinstance(value, str) else type(value).__name__
            raise BindingError(field, f"{field}: {shown} is not one of {', '.join(sorted(names))}")
        chosen.add(VpnProtocol(value))
    return tuple(p for p in MODE_PROTOCOLS if p in chosen)
