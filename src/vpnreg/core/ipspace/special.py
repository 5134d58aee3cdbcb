"""The special-purpose address ranges a registered prefix may not touch, as data.

Sources (checked against the registries as published in 2024-2025):
- IANA IPv4 Special-Purpose Address Registry and IANA IPv6 Special-Purpose Address Registry
  (RFC 6890, updated by RFC 8190 and later assignments), https://www.iana.org/assignments/
  iana-ipv4-special-registry and .../iana-ipv6-special-registry;
- IANA IPv4 Multicast Address Space Registry (224.0.0.0/4, RFC 5771) and the IANA IPv6
  Address Space Registry (ff00::/8 multicast, and everything outside 2000::/3, fc00::/7,
  fe80::/10 and ff00::/8 is "Reserved by IETF"), which are not in the special registries
  but are never a VPN endpoint either.

Deliberate choices:
- Entries the registries mark "Globally Reachable: True" are still refused: 192.31.196.0/24
  and 192.175.48.0/24 and 2620:4f:8000::/48 (AS112), 192.52.193.0/24 and 2001:3::/32 (AMT),
  192.0.0.9/32 and 2001:1::1/128 (PCP anycast), 192.0.0.10/32 (TURN anycast), 2001:4:112::/48
  (AS112), 2001:20::/28 (ORCHIDv2), 2001:30::/28 (drone remote ID). They are protocol anycast
  or identifier blocks that no organisation registers as its VPN endpoint, so the whole of
  192.0.0.0/24 and 2001::/23 is refused rather than carving the reachable parts out.
- 64:ff9b::/96 (NAT64 well-known prefix, globally reachable) and ::ffff:0:0/96 (IPv4-mapped)
  stand for IPv4 hosts: the IPv4 prefix itself must be registered instead.
- IPv6 outside 2000::/3 is refused as `reserved` (unallocated by IANA), with the more specific
  entries inside it (loopback, unique local, link-local, multicast, ...) giving their own code.
- The documentation ranges are the only ones a policy may allow (test deployments).

Where ranges nest (255.255.255.255/32 inside 240.0.0.0/4), the most specific range that
contains a prefix names the reason; see policy.refusal_reason.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from vpnreg.core.ipspace.addresses import Network
from vpnreg.core.ipspace.reasons import ReasonCode


@dataclass(frozen=True)
class SpecialRange:
    """One special-purpose block, the reason it is refused, and its name for messages."""

    network: Network
    code: ReasonCode
    name: str


_C = ReasonCode

#: (block, reason, name with its defining RFC). One ReasonCode per range.
_TABLE: tuple[tuple[str, ReasonCode, str], ...] = (
    # IPv4
    ("0.0.0.0/8", _C.unspecified, '"this network", RFC 791'),
    ("10.0.0.0/8", _C.private, "private-use, RFC 1918"),
    ("100.64.0.0/10", _C.cgnat, "shared address space (CGNAT), RFC 6598"),
    ("127.0.0.0/8", _C.loopback, "loopback, RFC 1122"),
    ("169.254.0.0/16", _C.link_local, "link-local, RFC 3927"),
    ("172.16.0.0/12", _C.private, "private-use, RFC 1918"),
    ("192.0.0.0/24", _C.special_purpose, "IETF protocol assignments, RFC 6890"),
    ("192.0.2.0/24", _C.documentation, "documentation TEST-NET-1, RFC 5737"),
    ("192.31.196.0/24", _C.special_purpose, "AS112-v4, RFC 7535"),
    ("192.52.193.0/24", _C.special_purpose, "AMT, RFC 7450"),
    ("192.88.99.0/24", _C.special_purpose, "deprecated 6to4 relay anycast, RFC 7526"),
    ("192.168.0.0/16", _C.private, "private-use, RFC 1918"),
    ("192.175.48.0/24", _C.special_purpose, "direct delegation AS112 service, RFC 7534"),
    ("198.18.0.0/15", _C.special_purpose, "benchmarking, RFC 2544"),
    ("198.51.100.0/24", _C.documentation, "documentation TEST-NET-2, RFC 5737"),
    ("203.0.113.0/24", _C.documentation, "documentation TEST-NET-3, RFC 5737"),
    ("224.0.0.0/4", _C.multicast, "multicast, RFC 5771"),
    ("240.0.0.0/4", _C.reserved, "reserved, RFC 1112"),
    ("255.255.255.255/32", _C.broadcast, "limited broadcast, RFC 919"),
    # IPv6: the unallocated space outside 2000::/3 first, the specific blocks inside it after.
    ("::/3", _C.reserved, "reserved by IETF, RFC 4291"),
    ("4000::/2", _C.reserved, "reserved by IETF, RFC 4291"),
    ("8000::/1", _C.reserved, "reserved by IETF, RFC 4291"),
    ("::/128", _C.unspecified, "unspecified address, RFC 4291"),
    ("::1/128", _C.loopback, "loopback, RFC 4291"),
    ("::ffff:0:0/96", _C.special_purpose, "IPv4-mapped addresses, RFC 4291"),
    ("64:ff9b::/96", _C.special_purpose, "IPv4-IPv6 translation, RFC 6052"),
    ("64:ff9b:1::/48", _C.special_purpose, "local-use IPv4/IPv6 translation, RFC 8215"),
    ("100::/64", _C.special_purpose, "discard-only, RFC 6666"),
    ("100:0:0:1::/64", _C.special_purpose, "dummy IPv6 prefix, RFC 9780"),
    ("2001::/23", _C.special_purpose, "IETF protocol assignments, RFC 2928"),
    ("2001:db8::/32", _C.documentation, "documentation, RFC 3849"),
    ("2002::/16", _C.special_purpose, "6to4, RFC 3056"),
    ("2620:4f:8000::/48", _C.special_purpose, "direct delegation AS112 service, RFC 7534"),
    ("3fff::/20", _C.documentation, "documentation, RFC 9637"),
    ("5f00::/16", _C.special_purpose, "segment routing (SRv6) SIDs, RFC 9602"),
    ("fc00::/7", _C.private, "unique local, RFC 4193"),
    ("fe80::/10", _C.link_local, "link-local unicast, RFC 4291"),
    ("ff00::/8", _C.multicast, "multicast, RFC 4291"),
)

SPECIAL_RANGES: tuple[SpecialRange, ...] = tuple(
    SpecialRange(ipaddress.ip_network(block), code, name) for block, code, name in _TABLE
)
