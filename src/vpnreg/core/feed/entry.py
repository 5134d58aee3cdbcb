"""The allowlist entry and its canonical fixed-width binary encoding (see ADR 0001)."""

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

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Bytes of one encoded network: family, 16-byte address, prefix length.
NETWORK_SIZE = 18
#: Bytes of one encoded entry (the record that is sorted and hashed).
RECORD_SIZE = 64
#: Family bytes; IPv4 sorts before IPv6 because 4 < 6.
FAMILY_V4 = 4
FAMILY_V6 = 6
MAX_REGISTRATION_ID = 2**64 - 1
MAX_PEERS = 2**16 - 1
EPOCH = dt.date(1970, 1, 1)
NO_PEERS_DIGEST = bytes(32)

#: IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d); the family byte keeps them apart
#: from real IPv6 addresses of that range.
_V4_MAPPED = bytes(10) + b"\xff\xff"
#: The record layout of ADR 0001 for struct.pack: big-endian, no padding.
ENTRY_STRUCT = struct.Struct(">B16sBQIH32s")
JSON_KEYS = frozenset({"prefix", "peers", "registration_id", "valid_until"})
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

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


def parse_date(text: object) -> dt.date:
    """Parse a YYYY-MM-DD day on or after 1970-01-01."""
    if not isinstance(text, str) or not _DATE.fullmatch(text):
        raise MalformedDocument("valid_until must be a YYYY-MM-DD string")
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise MalformedDocument(f"bad valid_until {text!r}: {exc}") from None
    if day < EPOCH:
        raise MalformedDocument("valid_until before 1970-01-01")
    return day


def parse_registration_id(value: object) -> int:
    if type(value) is not int or not 0 < value <= MAX_REGISTRATION_ID:
        raise MalformedDocument("registration_id must be an integer in 1..2**64-1")
    return value


@dataclass(frozen=True, order=False)
class AllowlistEntry:
    """One allowed VPN endpoint prefix, optionally limited to some peer networks."""

    prefix: Network
    #: Sorted by encoding, without duplicates; empty means any peer.
    peers: tuple[Network, ...]
    registration_id: int
    #: Last valid day, in the regulator's time zone.
    valid_until: dt.date

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
        if type(self.valid_until) is not dt.date or self.valid_until < EPOCH:
            raise ValueError("valid_until must be a date on or after 1970-01-01")

    def encode(self) -> bytes:
        """The canonical 64-byte record (layout in ADR 0001)."""
        head = encode_network(self.prefix)
        return ENTRY_STRUCT.pack(
            head[0],
            head[1:17],
            head[17],
            self.registration_id,
            (self.valid_until - EPOCH).days,
            len(self.peers),
            peers_digest(encode_network(p) for p in self.peers),
        )

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> AllowlistEntry:
        """Parse the JSON form strictly; every problem is a MalformedDocument."""
        if not isinstance(obj, Mapping) or set(obj) != JSON_KEYS:
            raise MalformedDocument(
                "an entry must have exactly prefix, peers, registration_id, valid_until"
            )
        peers = obj["peers"]
        if not isinstance(peers, list):
            raise MalformedDocument("peers must be a list")
        try:
            return cls(
                prefix=parse_network(obj["prefix"]),
                peers=tuple(parse_network(p) for p in peers),
                registration_id=parse_registration_id(obj["registration_id"]),
                valid_until=parse_date(obj["valid_until"]),
            )
        except (ValueError, TypeError) as exc:
            raise MalformedDocument(f"bad entry: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": str(self.prefix),
            "peers": [str(p) for p in self.peers],
            "registration_id": self.registration_id,
            "valid_until": self.valid_until.isoformat(),
        }


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
