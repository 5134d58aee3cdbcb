"""Hypothesis strategies and fixed keys shared by the feed tests."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import strategies as st

from vpnreg.core.feed import AllowlistEntry, Network, VpnProtocol
from vpnreg.core.protocols import MODE_PROTOCOLS

SESSION = "0123456789abcdef0123456789abcdef"
OTHER_SESSION = "fedcba9876543210fedcba9876543210"


def fixed_key(label: str) -> Ed25519PrivateKey:
    """A deterministic key per label, so failures reproduce."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


@st.composite
def networks(draw: st.DrawFn) -> Network:
    if draw(st.booleans()):
        plen = draw(st.integers(0, 32))
        addr = draw(st.integers(0, 2**32 - 1)) >> (32 - plen) << (32 - plen)
        return ipaddress.IPv4Network((addr, plen))
    plen = draw(st.integers(0, 128))
    addr = draw(st.integers(0, 2**128 - 1)) >> (128 - plen) << (128 - plen)
    return ipaddress.IPv6Network((addr, plen))


def instants() -> st.SearchStrategy[dt.datetime]:
    """Aware UTC instants of whole seconds, 1970 to 9999."""
    return st.datetimes(
        min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59)
    ).map(lambda d: d.replace(microsecond=0, tzinfo=dt.UTC))


@st.composite
def port_ranges(draw: st.DrawFn) -> tuple[int, int]:
    lo = draw(st.integers(0, 65535))
    return (lo, draw(st.integers(lo, 65535)))


def protocol_sets() -> st.SearchStrategy[frozenset[VpnProtocol]]:
    return st.frozensets(st.sampled_from(MODE_PROTOCOLS))


@st.composite
def entries(draw: st.DrawFn) -> AllowlistEntry:
    return AllowlistEntry(
        prefix=draw(networks()),
        peers=tuple(draw(st.lists(networks(), max_size=3))),
        registration_id=draw(st.integers(1, 2**64 - 1)),
        valid_until=draw(instants()),
        ports=draw(st.one_of(st.just((0, 65535)), port_ranges())),
        protocols=draw(protocol_sets()),
    )


#: Small pools make overlaps (shared prefixes, equal entries) common.
small_entries = st.builds(
    AllowlistEntry,
    prefix=st.sampled_from(
        [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32")]
    ),
    peers=st.sampled_from(
        [(), (ipaddress.ip_network("203.0.113.0/24"),), (ipaddress.ip_network("2001:db8::/48"),)]
    ),
    registration_id=st.integers(1, 4),
    valid_until=st.sampled_from(
        [
            dt.datetime(2026, 12, 31, 19, tzinfo=dt.UTC),
            dt.datetime(2027, 1, 31, 19, tzinfo=dt.UTC),
        ]
    ),
    ports=st.sampled_from([(0, 65535), (1024, 2047)]),
    protocols=st.sampled_from([frozenset(), frozenset({VpnProtocol.WIREGUARD})]),
)

entry_sets = st.lists(st.one_of(entries(), small_entries), max_size=12)
