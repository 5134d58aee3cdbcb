"""PrefixLookup against a brute-force longest-prefix match, with and without the tables."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpnreg.core.ipspace import Address, Network, PrefixError, PrefixLookup

V4 = int(ipaddress.IPv4Address("203.0.113.0"))
V6 = int(ipaddress.IPv6Address("2001:db8::"))


@st.composite
def nested_networks(draw: st.DrawFn) -> Network:
    """Prefixes around 203.0.113.0 and 2001:db8:: of all lengths, so they nest and repeat,
    plus a few anywhere (to reach both ends of the space)."""
    if draw(st.booleans()):
        length = draw(st.integers(min_value=0, max_value=32))
        anchor = V4 if draw(st.integers(0, 9)) else draw(st.integers(0, 2**32 - 1))
        noise = draw(st.integers(min_value=0, max_value=2**12 - 1))
        value = (anchor ^ noise) >> (32 - length) << (32 - length) if length else 0
        return ipaddress.IPv4Network((value, length))
    length = draw(st.integers(min_value=0, max_value=128))
    anchor = V6 if draw(st.integers(0, 9)) else draw(st.integers(0, 2**128 - 1))
    noise = draw(st.integers(min_value=0, max_value=2**12 - 1)) << draw(
        st.sampled_from([0, 30, 60, 90, 110])
    )
    value = (anchor ^ noise) >> (128 - length) << (128 - length) if length else 0
    return ipaddress.IPv6Network((value, length))


@st.composite
def probe_addresses(draw: st.DrawFn) -> Address:
    if draw(st.booleans()):
        anchor = V4 if draw(st.integers(0, 4)) else draw(st.integers(0, 2**32 - 1))
        return ipaddress.IPv4Address(anchor ^ draw(st.integers(0, 2**13 - 1)))
    anchor = V6 if draw(st.integers(0, 4)) else draw(st.integers(0, 2**128 - 1))
    noise = draw(st.integers(0, 2**13 - 1)) << draw(st.sampled_from([0, 30, 60, 90, 110]))
    return ipaddress.IPv6Address(anchor ^ noise)


EDGES: list[Address] = [
    ipaddress.IPv4Address(0),
    ipaddress.IPv4Address(2**32 - 1),
    ipaddress.IPv6Address(0),
    ipaddress.IPv6Address(2**128 - 1),
]


def brute_force(prefixes: list[Network], address: Address) -> int:
    best, best_length = -1, -1
    for i, network in enumerate(prefixes):
        # strict > so that among identical prefixes the lowest index wins
        if (
            network.version == address.version
            and address in network
            and network.prefixlen > best_length
        ):
            best, best_length = i, network.prefixlen
    return best


def _check(prefixes: list[Network], probes: list[Address], *, dense: bool) -> None:
    lookup = PrefixLookup(prefixes, dense=dense)
    probes = probes + EDGES
    expected = [brute_force(prefixes, a) for a in probes]
    assert len(lookup) == len(prefixes)
    batch = lookup.lookup_many(probes)
    assert batch.dtype == np.int64
    assert batch.tolist() == expected
    assert [lookup.lookup(a) for a in probes] == expected
    assert [lookup.lookup(str(a)) for a in probes[:5]] == expected[:5]
    v4 = [(int(a), e) for a, e in zip(probes, expected, strict=True) if a.version == 4]
    v6 = [(int(a), e) for a, e in zip(probes, expected, strict=True) if a.version == 6]
    got4 = lookup.lookup_v4(np.array([a for a, _ in v4], dtype=np.uint32))
    assert got4.dtype == np.int64
    assert got4.tolist() == [e for _, e in v4]
    hi = np.array([a >> 64 for a, _ in v6], dtype=np.uint64)
    lo = np.array([a & (2**64 - 1) for a, _ in v6], dtype=np.uint64)
    got6 = lookup.lookup_v6(hi, lo)
    assert got6.dtype == np.int64
    assert got6.tolist() == [e for _, e in v6]


@given(st.lists(nested_networks(), max_size=40), st.lists(probe_addresses(), max_size=60))
def test_direct_search_agrees_with_brute_force(
    prefixes: list[Network], probes: list[Address]
) -> None:
    _check(prefixes, probes, dense=False)


# Each example builds two 2^24-entry tables (~0.1 s), so fewer examples.
@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(nested_networks(), max_size=40), st.lists(probe_addresses(), max_size=60))
def test_tables_agree_with_brute_force(prefixes: list[Network], probes: list[Address]) -> None:
    _check(prefixes, probes, dense=True)


def _nets(*texts: str) -> list[Network]:
    return [ipaddress.ip_network(t) for t in texts]


@pytest.mark.parametrize(
    "dense", [pytest.param(False, id="direct"), pytest.param(True, id="tables")]
)
@pytest.mark.parametrize(
    ("prefixes", "address", "expected"),
    [
        pytest.param(_nets("203.0.113.0/24", "203.0.113.0/24"), "203.0.113.9", 0, id="dup-lowest"),
        pytest.param(
            _nets("203.0.113.0/24", "203.0.113.128/25", "203.0.113.0/24"),
            "203.0.113.200",
            1,
            id="nested-after-duplicate",
        ),
        pytest.param(_nets("203.0.113.0/25"), "203.0.113.128", -1, id="just-outside"),
        pytest.param(_nets("203.0.113.7/32", "203.0.112.0/22"), "203.0.113.7", 0, id="host"),
        pytest.param(_nets("203.0.113.7/32", "203.0.112.0/22"), "203.0.113.8", 1, id="beside"),
        pytest.param(_nets("0.0.0.0/0"), "255.255.255.255", 0, id="v4-default"),
        pytest.param(_nets("::/0", "2001:db8::/32"), "2001:db8::1", 1, id="v6-nested"),
        pytest.param(_nets("::/0", "2001:db8::/32"), "2001:db9::", 0, id="v6-default"),
        pytest.param(_nets("2001:db8::1/128"), "2001:db8::1", 0, id="v6-host"),
        pytest.param(_nets("2001:db8::1/128"), "2001:db8::2", -1, id="v6-host-miss"),
        pytest.param(_nets("192.0.2.0/24"), "2001:db8::1", -1, id="other-family"),
        pytest.param([], "192.0.2.1", -1, id="empty"),
    ],
)
def test_lookup_table(prefixes: list[Network], address: str, expected: int, dense: bool) -> None:
    assert PrefixLookup(prefixes, dense=dense).lookup(address) == expected


def test_lookup_refuses_malformed_text() -> None:
    with pytest.raises(PrefixError):
        PrefixLookup(_nets("192.0.2.0/24")).lookup("192.0.2.0/24")


def test_batch_input_is_checked_not_wrapped() -> None:
    lookup = PrefixLookup(_nets("192.0.2.0/24", "2001:db8::/32"))
    ints = np.array([int(ipaddress.IPv4Address("192.0.2.1")), 1], dtype=np.int64)
    assert lookup.lookup_v4(ints).tolist() == [0, -1]
    with pytest.raises(ValueError, match="outside uint32"):
        lookup.lookup_v4(np.array([2**32], dtype=np.int64))
    with pytest.raises(ValueError, match="outside uint32"):
        lookup.lookup_v4(np.array([-1], dtype=np.int64))
    with pytest.raises(TypeError):
        lookup.lookup_v4(np.array([1.5]))
    with pytest.raises(ValueError, match="same shape"):
        lookup.lookup_v6(np.zeros(2, dtype=np.uint64), np.zeros(3, dtype=np.uint64))
    assert lookup.lookup_v4(np.zeros(0, dtype=np.uint32)).tolist() == []


@pytest.mark.slow
def test_large_sets_use_the_tables_and_agree_with_the_direct_search() -> None:
    rng = np.random.default_rng(7)
    starts = rng.integers(0, 2**24, size=60_000) << 8
    prefixes: list[Network] = [ipaddress.IPv4Network((int(s), 24)) for s in starts[:50_000]]
    prefixes += [
        ipaddress.IPv4Network((int(s) | int(rng.integers(0, 256)), 32)) for s in starts[:10_000]
    ]
    addresses = np.concatenate(
        [
            (starts[:20_000] | rng.integers(0, 256, size=20_000)).astype(np.uint32),
            rng.integers(0, 2**32, size=20_000, dtype=np.uint64).astype(np.uint32),
        ]
    )
    default = PrefixLookup(prefixes)
    direct = PrefixLookup(prefixes, dense=False)
    found = default.lookup_v4(addresses)
    assert np.array_equal(found, direct.lookup_v4(addresses))
    assert (found[:20_000] >= 0).all()
    spot = [int(i) for i in rng.integers(0, len(addresses), size=200)]
    for i in spot:
        assert found[i] == brute_force(prefixes, ipaddress.IPv4Address(int(addresses[i])))
