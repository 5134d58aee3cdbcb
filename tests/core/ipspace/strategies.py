"""hypothesis strategies: small prefixes in documentation space, so references can enumerate."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from vpnreg.core.ipspace import Address, Network

V4_BASE = int(ipaddress.IPv4Address("192.0.2.0"))  # a /24
V6_BASE = int(ipaddress.IPv6Address("2001:db8::"))  # used as a /120


@st.composite
def small_networks(draw: st.DrawFn) -> Network:
    """A prefix of either family inside 192.0.2.0/24 or 2001:db8::/120."""
    version = draw(st.sampled_from([4, 6]))
    host_bits = draw(st.integers(min_value=0, max_value=8))
    offset = draw(st.integers(min_value=0, max_value=255)) >> host_bits << host_bits
    if version == 4:
        return ipaddress.IPv4Network((V4_BASE + offset, 32 - host_bits))
    return ipaddress.IPv6Network((V6_BASE + offset, 128 - host_bits))


@st.composite
def small_addresses(draw: st.DrawFn) -> Address:
    offset = draw(st.integers(min_value=0, max_value=255))
    if draw(st.booleans()):
        return ipaddress.IPv4Address(V4_BASE + offset)
    return ipaddress.IPv6Address(V6_BASE + offset)


def addresses_of(networks: list[Network]) -> set[tuple[int, int]]:
    """Every address of the networks as (version, integer): the brute-force reference."""
    return {(n.version, int(a)) for n in networks for a in n}
