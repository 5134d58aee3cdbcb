"""The allowlist entry (version 2) and its canonical fixed-width binary encoding (ADR 0006).

The network encoding is ADR 0001's; the 74-byte record adds an exclusive end instant in whole
seconds, the domestic endpoint's port range and the allowed VPN protocols. Version 1 records
(ADR 0001) are read by `vpnreg.core.feed.entry_v1`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
import socket
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vpnreg.core.feed.errors import MalformedDocument
from vpnreg.core.protocols import MODE_PROTOCOLS, VpnProtocol

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Bytes of one encoded network: family, 16-byte address, prefix length.
NETWORK_SIZE = 18
#: Bytes of one encoded v2 entry (the record that is sorted and hashed).
RECORD_SIZE = 74
#: Where the peers digest starts in a v2 record (it is the record's last 32 bytes).
PEERS_DIGEST_AT = RECORD_SIZE - 32
#: The entry format this module writes (the feed document's "version").
ENTRY_VERSION = 2
#: Family bytes; IPv4 sorts before IPv6 because 4 < 6.
FAMILY_V4 = 4
FAMILY_V6 = 6
MAX_REGISTRATION_ID = 2**64 - 1
MAX_PEERS = 2**16 - 1
EPOCH = dt.date(1970, 1, 1)
EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: The latest end a datetime can hold (9999-12-31T23:59:59Z), in seconds since the epoch.
MAX_VALID_UNTIL_S = int(
    (dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC) - EPOCH_UTC).total_seconds()
)
NO_PEERS_DIGEST = bytes(32)
MAX_PORT = 65535
#: The port range that covers every port (and portless protocols such as ESP and GRE).
ANY_PORTS = (0, MAX_PORT)
#: Bit i of the protocols field is the i-th protocol of ADR 0001's order; 0 means any.
PROTOCOL_BITS: dict[VpnProtocol, int] = {p: 1 << i for i, p in enumerate(MODE_PROTOCOLS)}
ALL_PROTOCOL_BITS = sum(PROTOCOL_BITS.values())

#: IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d); the family byte keeps them apart
#: from real IPv6 addresses of that range.
_V4_MAPPED = bytes(10) + b"\xff\xff"
#: The v2 record layout for struct.pack: big-endian, no padding.
ENTRY_STRUCT = struct.Struct(">B16sBQQHHHH32s")
JSON_KEYS = frozenset({"prefix", "peers", "registration_id", "valid_until", "ports", "protocols"})
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")

assert ENTRY_STRUCT.size == RECORD_SIZE


def encode_network(network: Network) -> bytes:
    """The 18-byte encoding of a network: family, address (IPv4-mapped for IPv4), prefix length."""
    if isinstance(network, ipaddress.IPv4Network):
        return (
            bytes([FAMILY_V4])
            + _V4_MAPPED
            + network.network_address.packed
            + bytes([network.prefixlen])
        )
    return bytes([FAMILY_V6]) + network.network_address.packed + bytes([network.prefixlen])


def decode_network(data: bytes) -> Network:
    """Inverse of encode_network; raises ValueError on anything that is not an encoding."""
    if len(data) != NETWORK_SIZE:
        raise ValueError("an encoded network is 18 bytes")
    family, address, plen = data[0], data[1:17], data[17]
    if family == FAMILY_V4:
        if address[:12] != _V4_MAPPED:
            raise ValueError("IPv4 address not in the IPv4-mapped form")
        return ipaddress.IPv4Network((address[12:], plen))
    if family == FAMILY_V6:
        return ipaddress.IPv6Network((address, plen))
    raise ValueError(f"unknown address family byte {family}")


def peers_digest(encoded_peers: Iterable[bytes]) -> bytes:
    """SHA-256 over the sorted peer encodings, or 32 zero bytes when there are none."""
    joined = b"".join(encoded_peers)
    return hashlib.sha256(joined).digest() if joined else NO_PEERS_DIGEST


def parse_network(text: object) -> Network:
    """Parse a network from JSON text strictly (host bits must be zero)."""
    if not isinstance(text, str):
        raise MalformedDocument("a network must be a string")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise MalformedDocument(f"bad network {text!r}: {exc}") from None


def parse_registration_id(value: object) -> int:
    if type(value) is not int or not 0 < value <= MAX_REGISTRATION_ID:
        raise MalformedDocument("registration_id must be an integer in 1..2**64-1")
    return value


def seconds(moment: dt.datetime) -> int:
    """Whole seconds since 1970-01-01T00:00Z of an aware datetime."""
    return (moment - EPOCH_UTC) // dt.timedelta(seconds=1)


def from_seconds(value: int) -> dt.datetime:
    return EPOCH_UTC + dt.timedelta(seconds=value)


def time_text(moment: dt.datetime) -> str:
    """valid_until as JSON writes it: UTC, whole seconds, a Z."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_valid_until(text: object) -> dt.datetime:
    """Parse a YYYY-MM-DDTHH:MM:SSZ instant on or after 1970-01-01T00:00:00Z."""
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise MalformedDocument("valid_until must be a UTC time like 2027-01-31T19:00:00Z")
    try:
        moment = dt.datetime.fromisoformat(text[:-1]).replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise MalformedDocument(f"bad valid_until {text!r}: {exc}") from None
    if moment < EPOCH_UTC:
        raise MalformedDocument("valid_until before 1970-01-01T00:00:00Z")
    return moment


def parse_ports(value: object) -> tuple[int, int]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or any(type(v) is not int for v in value)
        or not 0 <= value[0] <= value[1] <= MAX_PORT
    ):
        raise MalformedDocument("ports must be [lo, hi] with 0 <= lo <= hi <= 65535")
    return (value[0], value[1])


def parse_protocols(value: object) -> frozenset[VpnProtocol]:
    if not isinstance(value, list) or any(type(v) is not str for v in value):
        raise MalformedDocument("protocols must be a list of VPN protocol names")
    try:
        found = [VpnProtocol(v) for v in value]
    except ValueError as exc:
        raise MalformedDocument(f"protocols: {exc}") from None
    if VpnProtocol.NONE in found or len(set(found)) != len(found):
        raise MalformedDocument("protocols must name VPN protocols, each once")
    return frozenset(found)


def protocol_bits(protocols: Iterable[VpnProtocol]) -> int:
    """The u16 bitmask of a protocol set (0 = any)."""
    return sum(PROTOCOL_BITS[p] for p in set(protocols))


def protocols_from_bits(bits: int) -> frozenset[VpnProtocol]:
    return frozenset(p for p, bit in PROTOCOL_BITS.items() if bits & bit)


def protocol_names(protocols: Iterable[VpnProtocol]) -> list[str]:
    """Protocol names in the canonical (ADR 0001) order."""
    chosen = set(protocols)
    return [str(p) for p in MODE_PROTOCOLS if p in chosen]


@dataclass(frozen=True, order=False)
class AllowlistEntry:
    """One allowed VPN endpoint prefix, optionally limited to some peer networks, ports of the
    domestic endpoint and VPN protocols, until an exclusive end instant."""

    prefix: Network
    #: Sorted by encoding, without duplicates; empty means any peer.
    peers: tuple[Network, ...]
    registration_id: int
    #: The first instant at which the entry no longer holds: aware UTC, whole seconds.
    valid_until: dt.datetime
    #: (lo, hi), inclusive: the domestic endpoint's ports; ANY_PORTS also covers ESP, GRE, ...
    ports: tuple[int, int] = ANY_PORTS
    #: The VPN protocols allowed; empty means any.
    protocols: frozenset[VpnProtocol] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, ipaddress.IPv4Network | ipaddress.IPv6Network):
            raise TypeError("prefix must be an IPv4Network or IPv6Network")
        peers = tuple(self.peers)
        for peer in peers:
            if not isinstance(peer, ipaddress.IPv4Network | ipaddress.IPv6Network):
                raise TypeError("peers must be IPv4Network or IPv6Network values")
        canonical = tuple(sorted(set(peers), key=encode_network))
        if len(canonical) > MAX_PEERS:
            raise ValueError(f"at most {MAX_PEERS} peers")
        object.__setattr__(self, "peers", canonical)
        if type(self.registration_id) is not int or not (
            0 < self.registration_id <= MAX_REGISTRATION_ID
        ):
            raise ValueError("registration_id must be in 1..2**64-1")
        until = self.valid_until
        if (
            not isinstance(until, dt.datetime)
            or until.utcoffset() is None
            or until.microsecond
            or until < EPOCH_UTC
        ):
            raise ValueError(
                "valid_until must be an aware datetime of whole seconds on or after 1970-01-01"
            )
        object.__setattr__(self, "valid_until", until.astimezone(dt.UTC))
        ports = tuple(self.ports)
        if (
            len(ports) != 2
            or any(type(p) is not int for p in ports)
            or not 0 <= ports[0] <= ports[1] <= MAX_PORT
        ):
            raise ValueError("ports must be (lo, hi) with 0 <= lo <= hi <= 65535")
        object.__setattr__(self, "ports", (ports[0], ports[1]))
        protocols = frozenset(VpnProtocol(p) for p in self.protocols)
        if VpnProtocol.NONE in protocols:
            raise ValueError("protocols must be VPN protocols")
        object.__setattr__(self, "protocols", protocols)

    @property
    def any_port(self) -> bool:
        return self.ports == ANY_PORTS

    def encode(self) -> bytes:
        """The canonical 74-byte record (layout in ADR 0006)."""
        head = encode_network(self.prefix)
        return ENTRY_STRUCT.pack(
            head[0],
            head[1:17],
            head[17],
            self.registration_id,
            seconds(self.valid_until),
            self.ports[0],
            self.ports[1],
            protocol_bits(self.protocols),
            len(self.peers),
            peers_digest(encode_network(p) for p in self.peers),
        )

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> AllowlistEntry:
        """Parse the JSON form strictly; every problem is a MalformedDocument."""
        if not isinstance(obj, Mapping) or set(obj) != JSON_KEYS:
            raise MalformedDocument(
                "an entry must have exactly prefix, peers, registration_id, valid_until, "
                "ports, protocols"
            )
        peers = obj["peers"]
        if not isinstance(peers, list):
            raise MalformedDocument("peers must be a list")
        try:
            return cls(
                prefix=parse_network(obj["prefix"]),
                peers=tuple(parse_network(p) for p in peers),
                registration_id=parse_registration_id(obj["registration_id"]),
                valid_until=parse_valid_until(obj["valid_until"]),
                ports=parse_ports(obj["ports"]),
                protocols=parse_protocols(obj["protocols"]),
            )
        except (ValueError, TypeError) as exc:
            raise MalformedDocument(f"bad entry: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": str(self.prefix),
            "peers": [str(p) for p in self.peers],
            "registration_id": self.registration_id,
            "valid_until": time_text(self.valid_until),
            "ports": list(self.ports),
            "protocols": protocol_names(self.protocols),
        }

    def holds_at(self, now: dt.datetime) -> bool:
        """Whether the entry is in force at `now` (its end is exclusive)."""
        return now < self.valid_until


def network_text(encoded: bytes) -> str:
    """Text form of an encoded network, as inet_ntop writes it (fast; used for bulk JSON)."""
    if encoded[0] == FAMILY_V4:
        return f"{socket.inet_ntop(socket.AF_INET, encoded[13:17])}/{encoded[17]}"
    return f"{socket.inet_ntop(socket.AF_INET6, encoded[1:17])}/{encoded[17]}"


def fast_encode_network(text: object) -> bytes | None:
    """Encode a network written in inet_ntop's canonical text, or None for any other text.

    Bulk parsing uses this first and falls back to `parse_network` (which decides what is valid)
    whenever it returns None, so both paths accept exactly the same inputs.
    """
    if not isinstance(text, str):
        return None
    addr, sep, plen_text = text.partition("/")
    if not sep or not plen_text.isdigit() or plen_text != str(int(plen_text)):
        return None
    plen = int(plen_text)
    try:
        if ":" in addr:
            packed = socket.inet_pton(socket.AF_INET6, addr)
            if socket.inet_ntop(socket.AF_INET6, packed) != addr or plen > 128:
                return None
            family, address, bits = FAMILY_V6, packed, 128
        else:
            packed = socket.inet_pton(socket.AF_INET, addr)
            if socket.inet_ntop(socket.AF_INET, packed) != addr or plen > 32:
                return None
            family, address, bits = FAMILY_V4, _V4_MAPPED + packed, 32
    except (OSError, ValueError):
        return None
    if int.from_bytes(packed, "big") & ((1 << (bits - plen)) - 1):
        return None
    return bytes([family]) + address + bytes([plen])
