"""The small fixed allowlist the exporter tests render: IPv4 and IPv6, with and without peers."""

from __future__ import annotations

import datetime as dt
from ipaddress import ip_network

from vpnreg.core.feed import AllowlistEntry

GENERATED = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)


def entry(
    prefix: str, registration_id: int, *peers: str, until: str = "2027-01-31T19:00:00"
) -> AllowlistEntry:
    return AllowlistEntry(
        prefix=ip_network(prefix),
        peers=tuple(ip_network(p) for p in peers),
        registration_id=registration_id,
        valid_until=dt.datetime.fromisoformat(until).replace(tzinfo=dt.UTC),
    )


#: 192.0.2.0/25 and .128/25 are adjacent (merge to /24); 203.0.113.64/26 lies inside
#: 203.0.113.0/24; 2001:db8:1::/48 is registered twice.
SAMPLE = (
    entry("192.0.2.0/25", 17),
    entry("192.0.2.128/25", 18, "2001:db8:ffff::/48", "198.51.100.0/24"),
    entry("203.0.113.64/26", 22, until="2026-06-30T19:00:00"),
    entry("203.0.113.0/24", 21, "198.51.100.7/32"),
    entry("2001:db8:1::/48", 31),
    entry("2001:db8:1::/48", 30, "2001:db8:ff::/48"),
)
