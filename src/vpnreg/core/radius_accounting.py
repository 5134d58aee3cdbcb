"""RADIUS accounting (RFC 2866) records as binding events, and the duplicate cache of RFC 5080.

`accounting_record` reads the attributes of a verified Accounting-Request (names -> values, as
the RADIUS library decodes them with the shipped dictionary) under one ISP's client settings:

- Acct-Status-Type Start / Interim-Update (or its older name Alive) / Stop give a start /
  interim / stop event; any other type (Accounting-On, Accounting-Off, Failed, ...) is answered
  and stores nothing.
- The subscriber id is the value of User-Name, or of the attribute the ISP configured (e.g.
  Class, whose octets must be ASCII); Acct-Session-Id is the session id.
- The address: Framed-IP-Address (IPv4), Framed-IPv6-Prefix, Framed-IPv6-Address and
  Delegated-IPv6-Prefix. A dual-stack session gives one event per address: the IPv4 one keeps
  Acct-Session-Id as its session id, the IPv6 ones get `#<attribute>` appended, so each binding
  is its own (subscriber, session) and a stop ends them all.
- The ports attribute (configured per ISP; the shipped vendor attribute VPNReg-Port-Range)
  holds `[PUBLIC-IPV4 ]LO-HI[ anything else]`: one token LO-HI is the port block, an optional
  IPv4 token the public (NAT outside) address, which then replaces Framed-IP-Address (behind
  carrier-grade NAT that is the inside, RFC 6598 address). The same format reads Nokia's
  Alc-Nat-Port-Range ("203.0.113.7 1024-2047 router Base nat-policy"). The port block applies to
  the IPv4 address only: IPv6 is not translated.

Pure: no socket, clock or database; the accounting server (vpnreg.radius) does the I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from vpnreg.core.bindings import BindingEvent, EventKind

#: Acct-Status-Type names (RFC 2866 5.1) that report a binding, and the event each one is.
STATUS_EVENTS: Mapping[str, EventKind] = {
    "Start": EventKind.START,
    "Interim-Update": EventKind.INTERIM,
    "Alive": EventKind.INTERIM,
    "Stop": EventKind.STOP,
}
#: The attribute the IPv4 address comes from; its events keep Acct-Session-Id as it is.
IPV4_ATTRIBUTE = "Framed-IP-Address"
#: Attributes holding an IPv6 address or prefix, in the order their events are made.
IPV6_ATTRIBUTES = ("Framed-IPv6-Prefix", "Framed-IPv6-Address", "Delegated-IPv6-Prefix")
#: Where the session id comes from.
SESSION_ATTRIBUTE = "Acct-Session-Id"
STATUS_ATTRIBUTE = "Acct-Status-Type"

_RANGE_TOKEN = re.compile(r"^([0-9]{1,5})-([0-9]{1,5})$")

#: Attribute values as the RADIUS library decodes them: lists, since attributes may repeat.
Attributes = Mapping[str, Sequence[object]]


class AccountingError(ValueError):
    """An Accounting-Request that reports a binding but cannot be read as one (one line)."""


@dataclass(frozen=True)
class ClientAttributes:
    """Which attributes one ISP's client uses for the subscriber id and the port block."""

    subscriber: str = "User-Name"
    ports: str | None = None


@dataclass(frozen=True)
class AccountingRecord:
    """What one Accounting-Request says: its status type and the binding events it reports
    (none for a status type that reports no binding, such as Accounting-On)."""

    status: str
    events: tuple[BindingEvent, ...]


def _first(attributes: Attributes, name: str) -> object | None:
    values = attributes.get(name)
    return values[0] if values else None


def _text(attributes: Attributes, name: str) -> str:
    """The attribute's first value as text (octets must be ASCII), or AccountingError."""
    value = _first(attributes, name)
    if value is None:
        raise AccountingError(f"the request has no {name} attribute")
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            raise AccountingError(f"{name} is not ASCII text") from None
    if isinstance(value, str):
        return value
    raise AccountingError(f"{name} is not text")


def parse_port_block(value: str) -> tuple[tuple[int, int], str | None]:
    """The port block (lo, hi) and the optional public IPv4 address of a ports attribute.

    `value` is whitespace-separated tokens: exactly one LO-HI with 0 <= LO <= HI <= 65535, at
    most one IPv4 address, anything else ignored (router names, NAT policies)."""
    ranges: list[tuple[int, int]] = []
    addresses: list[str] = []
    for token in value.split():
        match = _RANGE_TOKEN.match(token)
        if match:
            ranges.append((int(match[1]), int(match[2])))
            continue
        try:
            addresses.append(str(ipaddress.IPv4Address(token)))
        except ValueError:
            continue
    shown = " ".join(value.split())[:80]
    if len(ranges) != 1:
        raise AccountingError(f"port block {shown!r} must hold exactly one LO-HI range")
    if len(addresses) > 1:
        raise AccountingError(f"port block {shown!r} names more than one IPv4 address")
    lo, hi = ranges[0]
    if not 0 <= lo <= hi <= 65535:
        raise AccountingError(f"port block {shown!r}: need 0 <= LO <= HI <= 65535")
    return (lo, hi), (addresses[0] if addresses else None)


def accounting_record(attributes: Attributes, client: ClientAttributes) -> AccountingRecord:
    """The binding events an Accounting-Request reports, or AccountingError saying what is
    missing or malformed. The events are not yet checked: report_events checks them (subscriber
    and session id syntax, the prefix policy) and says why one is refused."""
    raw_status = _first(attributes, STATUS_ATTRIBUTE)
    if raw_status is None:
        raise AccountingError(f"the request has no {STATUS_ATTRIBUTE} attribute")
    status = str(raw_status)
    kind = STATUS_EVENTS.get(status)
    if kind is None:
        return AccountingRecord(status, ())
    subscriber = _text(attributes, client.subscriber)
    session = _text(attributes, SESSION_ATTRIBUTE)
    ports: tuple[int, int] | None = None
    ipv4 = _first(attributes, IPV4_ATTRIBUTE)
    if client.ports is not None and _first(attributes, client.ports) is not None:
        ports, public = parse_port_block(_text(attributes, client.ports))
        if public is not None:
            ipv4 = public
    addresses: list[tuple[str, str, tuple[int, int] | None]] = []
    if ipv4 is not None:
        addresses.append((str(ipv4), session, ports))
    for name in IPV6_ATTRIBUTES:
        value = _first(attributes, name)
        if value is not None:
            addresses.append((str(value), f"{session}#{name}", None))
    if not addresses:
        names = ", ".join((IPV4_ATTRIBUTE, *IPV6_ATTRIBUTES))
        raise AccountingError(f"the request holds no address ({names})")
    events = tuple(
        BindingEvent(kind.value, subscriber, session_id, address, block)
        for address, session_id, block in addresses
    )
    return AccountingRecord(status, events)


#: What the duplicate cache knows of a request: still being stored, or answered (the answer).
Seen = tuple[Literal["in-flight"], None] | tuple[Literal["answered"], bytes]


class DuplicateCache:
    """Requests seen recently, by (client address, client port, identifier, Request
    Authenticator), as RFC 5080 2.2.2 recommends: a retransmission of a request being stored is
    dropped (its answer follows), one of an answered request gets the same answer again.

    Entries live `lifetime` seconds (the caller's monotonic clock), at most `capacity` of them
    (the oldest go first). Not thread-safe: the caller holds a lock around it."""

    def __init__(self, *, lifetime: float = 30.0, capacity: int = 65536) -> None:
        self._lifetime = lifetime
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, int, int, bytes], tuple[float, Seen]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self, now: float) -> None:
        while self._entries:
            key, (born, _) = next(iter(self._entries.items()))
            if now - born < self._lifetime and len(self._entries) <= self._capacity:
                return
            del self._entries[key]

    def seen(self, key: tuple[str, int, int, bytes], now: float) -> Seen | None:
        """What is known of `key`; when nothing, it is recorded as in flight from `now`."""
        self._expire(now)
        found = self._entries.get(key)
        if found is not None:
            return found[1]
        self._entries[key] = (now, ("in-flight", None))
        self._expire(now)
        return None

    def answered(self, key: tuple[str, int, int, bytes], reply: bytes, now: float) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (now, ("answered", reply))
        self._expire(now)

    def forget(self, key: tuple[str, int, int, bytes]) -> None:
        """The request was not answered (storing failed): its retransmission is tried anew."""
        self._entries.pop(key, None)
