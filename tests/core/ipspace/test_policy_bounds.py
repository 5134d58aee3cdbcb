"""The prefix policy's integer comparisons decide exactly as ipaddress's overlaps/subnet_of.

`policy._refusal` compares the special ranges' first and last addresses as integers (bindings
check thousands of addresses a second); the oracle here is the decision written with
ipaddress's own set operations, as it was before. Same accept/refuse, same reason, same
message, for addresses and prefixes drawn at and around every special range's edges."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpnreg.core.ipspace import Network, PrefixError, PrefixPolicy, ReasonCode, validate_prefix
from vpnreg.core.ipspace.addresses import bounds
from vpnreg.core.ipspace.special import SPECIAL_RANGES

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def oracle(network: Network, policy: PrefixPolicy) -> tuple[ReasonCode, str] | None:
    """The refusal written with ipaddress's overlaps() and subnet_of()."""
    overlapping = [
        s
        for s in SPECIAL_RANGES
        if s.network.version == network.version
        and not (policy.allow_documentation and s.code is ReasonCode.documentation)
        and s.network.overlaps(network)
    ]
    containing = [s for s in overlapping if network.subnet_of(s.network)]  # type: ignore[arg-type]
    if containing:
        special = max(containing, key=lambda s: s.network.prefixlen)
        message = f"{network} lies in {special.network} ({special.name})"
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
            v4 = ipaddress.IPv4Network(
                (network.network_address.ipv4_mapped, network.prefixlen - 96)
            )
            message += f"; register the IPv4 prefix {v4} instead"
        return special.code, message
    limit = policy.max_v4 if network.version == 4 else policy.max_v6
    if network.prefixlen < limit:
        return ReasonCode.too_broad, (
            f"{network} is too broad: IPv{network.version} prefixes must be /{limit} or longer"
        )
    if overlapping:
        special = min(overlapping, key=lambda s: (s.network.network_address, s.network.prefixlen))
        return special.code, f"{network} overlaps {special.network} ({special.name})"
    return None


@st.composite
def networks(draw: st.DrawFn) -> Network:
    """Addresses and prefixes at, just inside and just outside a special range's edges, or
    anywhere in the address space."""
    version = draw(st.sampled_from([4, 6]))
    width = 32 if version == 4 else 128
    edges = [e for s in SPECIAL_RANGES if s.network.version == version for e in bounds(s.network)]
    value = draw(
        st.one_of(
            st.integers(0, (1 << width) - 1),
            st.builds(
                lambda edge, nudge: min(max(edge + nudge, 0), (1 << width) - 1),
                st.sampled_from(edges),
                st.integers(-300, 300),
            ),
        )
    )
    length = draw(st.one_of(st.just(width), st.integers(0, width)))
    if version == 4:
        return ipaddress.IPv4Network((value, length), strict=False)
    return ipaddress.IPv6Network((value, length), strict=False)


policies = st.builds(
    PrefixPolicy,
    allow_documentation=st.booleans(),
    max_v4=st.integers(0, 32),
    max_v6=st.integers(0, 128),
)


@given(networks(), policies)
def test_validate_prefix_accepts_and_refuses_as_the_ipaddress_oracle(
    network: Network, policy: PrefixPolicy
) -> None:
    expected = oracle(network, policy)
    if expected is None:
        assert validate_prefix(str(network), policy) == network
    else:
        with pytest.raises(PrefixError) as refused:
            validate_prefix(str(network), policy)
        assert (refused.value.code, refused.value.message) == expected
