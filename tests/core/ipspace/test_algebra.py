"""Set algebra against brute force: small prefixes whose addresses can be enumerated."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.ipspace.strategies import addresses_of, small_addresses, small_networks
from vpnreg.core.ipspace import (
    Address,
    Network,
    collapse,
    contains,
    difference,
    overlapping_pairs,
    overlaps,
)

prefix_lists = st.lists(small_networks(), max_size=12)


def _reference_collapse(networks: list[Network]) -> list[Network]:
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]


@given(prefix_lists)
def test_collapse_is_minimal_and_covers_the_same_addresses(networks: list[Network]) -> None:
    result = collapse(networks)
    assert addresses_of(result) == addresses_of(networks)
    assert result == _reference_collapse(networks)
    assert collapse(result) == result


@given(small_networks(), small_networks())
def test_overlaps_matches_shared_addresses(a: Network, b: Network) -> None:
    assert overlaps(a, b) == bool(addresses_of([a]) & addresses_of([b]))
    assert overlaps(a, b) == overlaps(b, a)


@given(prefix_lists)
def test_overlapping_pairs_matches_all_pairs(networks: list[Network]) -> None:
    expected = [
        (i, j)
        for i in range(len(networks))
        for j in range(i + 1, len(networks))
        if addresses_of([networks[i]]) & addresses_of([networks[j]])
    ]
    assert overlapping_pairs(networks) == expected


@given(prefix_lists, st.one_of(small_networks(), small_addresses()))
def test_contains_matches_subset(networks: list[Network], item: Network | Address) -> None:
    if isinstance(item, ipaddress.IPv4Address | ipaddress.IPv6Address):
        wanted = {(item.version, int(item))}
    else:
        wanted = addresses_of([item])
    assert contains(networks, item) == (wanted <= addresses_of(networks))


@given(prefix_lists, prefix_lists)
def test_difference_matches_set_difference(a: list[Network], b: list[Network]) -> None:
    result = difference(a, b)
    assert addresses_of(result) == addresses_of(a) - addresses_of(b)
    assert result == collapse(result)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param(["192.0.2.0/24"], ["192.0.2.0/25"], ["192.0.2.128/25"], id="half"),
        pytest.param(
            ["192.0.2.0/24"],
            ["192.0.2.1/32"],
            [
                "192.0.2.0/32",
                "192.0.2.2/31",
                "192.0.2.4/30",
                "192.0.2.8/29",
                "192.0.2.16/28",
                "192.0.2.32/27",
                "192.0.2.64/26",
                "192.0.2.128/25",
            ],
            id="punch-one-address",
        ),
        pytest.param(["2001:db8::/32"], ["192.0.2.0/24"], ["2001:db8::/32"], id="other-family"),
        pytest.param(["0.0.0.0/0", "::/0"], ["0.0.0.0/0"], ["::/0"], id="whole-spaces"),
        pytest.param([], ["192.0.2.0/24"], [], id="empty"),
    ],
)
def test_difference_table(a: list[str], b: list[str], expected: list[str]) -> None:
    nets = [ipaddress.ip_network(x) for x in a]
    holes = [ipaddress.ip_network(x) for x in b]
    assert difference(nets, holes) == [ipaddress.ip_network(x) for x in expected]


def test_collapse_orders_ipv4_before_ipv6_and_merges_neighbours() -> None:
    nets = [
        ipaddress.ip_network(x)
        for x in ["2001:db8::/33", "198.51.100.0/25", "2001:db8:8000::/33", "198.51.100.128/25"]
    ]
    assert collapse(nets) == [
        ipaddress.ip_network("198.51.100.0/24"),
        ipaddress.ip_network("2001:db8::/32"),
    ]


def test_contains_the_top_of_the_space() -> None:
    top = [ipaddress.ip_network("255.255.255.0/24"), ipaddress.ip_network("ffff::/16")]
    assert contains(top, ipaddress.ip_address("255.255.255.255"))
    assert contains(top, ipaddress.ip_address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
    assert not contains(top, ipaddress.ip_address("255.255.254.255"))


def test_overlapping_pairs_is_not_quadratic_on_disjoint_input() -> None:
    # 20k disjoint /32s: a pairwise loop would make 2e8 comparisons; the sweep reports none.
    nets: list[Network] = [ipaddress.IPv4Network((0x08000000 + i, 32)) for i in range(20_000)]
    nets.append(ipaddress.IPv4Network("8.0.0.0/24"))
    pairs = overlapping_pairs(nets)
    assert pairs == [(i, 20_000) for i in range(256)]
