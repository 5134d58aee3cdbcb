"""Hypothesis strategies and fixed keys shared by the feed tests."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import strategies as st

from vpnreg.core.feed import AllowlistEntry, Network

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


@st.composite
def entries(draw: st.DrawFn) -> AllowlistEntry:
    return AllowlistEntry(
        prefix=draw(networks()),
        peers=tuple(draw(st.lists(networks(), max_size=3))),
        registration_id=draw(st.integers(1, 2**64 - 1)),
        valid_until=draw(st.dates(min_value=dt.date(1970, 1, 1))),
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
    valid_until=st.sampled_from([dt.date(2026, 12, 31), dt.date(2027, 1, 31)]),
)

entry_sets = st.lists(st.one_of(entries(), small_entries), max_size=12)
