"""Parsing and the registration policy: one row per case, every reason code of both families."""

from __future__ import annotations

import ipaddress
import pickle

import pytest

from vpnreg.core.ipspace import (
    PrefixError,
    PrefixPolicy,
    ReasonCode,
    parse_address,
    parse_prefix,
    refusal_reason,
    validate_prefix,
)
from vpnreg.core.ipspace.special import SPECIAL_RANGES

C = ReasonCode
DEFAULT = PrefixPolicy()
DOCS = PrefixPolicy(allow_documentation=True)
NARROW = PrefixPolicy(max_v4=24, max_v6=48)

# (text, policy, expected: a ReasonCode for a refusal or the accepted network as text)
CASES = [
    # accepted
    ("8.8.8.0/24", DEFAULT, "8.8.8.0/24", "v4-public"),
    ("8.8.8.8", DEFAULT, "8.8.8.8/32", "v4-bare-address"),
    ("2a00:1450:4001::1", DEFAULT, "2a00:1450:4001::1/128", "v6-bare-address"),
    ("2A00:1450:4001::/48", DEFAULT, "2a00:1450:4001::/48", "v6-uppercase"),
    ("  8.8.8.0/24\n", DEFAULT, "8.8.8.0/24", "surrounding-whitespace"),
    ("8.8.0.0/22", DEFAULT, "8.8.0.0/22", "v4-limit-22-ok"),
    ("2a00:1400::/40", DEFAULT, "2a00:1400::/40", "v6-limit-40-ok"),
    ("8.8.8.0/24", NARROW, "8.8.8.0/24", "custom-v4-limit-ok"),
    ("2a00:1450:4001::/48", NARROW, "2a00:1450:4001::/48", "custom-v6-limit-ok"),
    ("192.0.2.0/24", DOCS, "192.0.2.0/24", "doc-allowed-v4"),
    ("198.51.100.128/25", DOCS, "198.51.100.128/25", "doc-allowed-v4-inside"),
    ("203.0.113.7", DOCS, "203.0.113.7/32", "doc-allowed-v4-host"),
    ("2001:db8:1::/48", DOCS, "2001:db8:1::/48", "doc-allowed-v6"),
    ("3fff:1::/48", DOCS, "3fff:1::/48", "doc-allowed-v6-3fff"),
    ("198.51.100.0/22", DOCS, "198.51.100.0/22", "doc-allowed-overlapping-neighbours"),
    # malformed
    ("", DEFAULT, C.malformed, "empty"),
    ("hello", DEFAULT, C.malformed, "garbage"),
    ("8.8.8.0 /24", DEFAULT, C.malformed, "inner-whitespace"),
    ("8.8.8.0/33", DEFAULT, C.malformed, "v4-length-too-long"),
    ("2001:db8::/129", DEFAULT, C.malformed, "v6-length-too-long"),
    ("8.8.8/24", DEFAULT, C.malformed, "three-octets"),
    ("8.8.8.0/255.255.255.0", DEFAULT, C.malformed, "netmask-notation"),
    ("8.8.8.0/024", DEFAULT, C.malformed, "length-leading-zero"),
    ("08.8.8.0/24", DEFAULT, C.malformed, "octet-leading-zero"),
    ("8.8.8.0/", DEFAULT, C.malformed, "empty-length"),
    ("/24", DEFAULT, C.malformed, "no-address"),
    ("8.8.8.0/24/24", DEFAULT, C.malformed, "two-lengths"),
    ("fe80::1%eth0", DEFAULT, C.malformed, "v6-scope-id"),
    ("2001:db8:::1", DEFAULT, C.malformed, "v6-triple-colon"),
    ("256.1.1.1", DEFAULT, C.malformed, "octet-out-of-range"),
    # hostile or confused input (issue 16): refused as malformed, never reinterpreted
    ("010.1.1.0/24", DEFAULT, C.malformed, "octet-leading-zero-octal-looking"),
    ("2001:04860::/32", DEFAULT, C.malformed, "v6-group-of-five-digits"),
    ("0x8.8.8.0/24", DEFAULT, C.malformed, "hex-octet"),
    ("8.8.8.0/+24", DEFAULT, C.malformed, "signed-length"),
    ("fe80::1%eth0/64", DEFAULT, C.malformed, "v6-scope-id-with-length"),
    ("fe80::%1/64", DEFAULT, C.malformed, "v6-numeric-scope-id"),
    ("8.8.8.0/24\n10.0.0.0/8", DEFAULT, C.malformed, "embedded-newline"),
    ("8.8.8.0/24\x00", DEFAULT, C.malformed, "trailing-nul"),
    ("8.8.8.0\t/24", DEFAULT, C.malformed, "inner-tab"),
    ("\u200b8.8.8.0/24", DEFAULT, C.malformed, "zero-width-space"),
    ("\uff19\uff12.0.2.0/24", DEFAULT, C.malformed, "fullwidth-digits"),
    ("8.8.8.0/\uff12\uff14", DEFAULT, C.malformed, "fullwidth-length"),
    ("\u0668.8.8.0/24", DEFAULT, C.malformed, "arabic-indic-digit"),
    ("8.8.8.0/24" * 10_000, DEFAULT, C.malformed, "hundred-thousand-characters"),
    # host bits
    ("203.0.113.7/24", DEFAULT, C.host_bits_set, "v4-host-bits"),
    ("2001:db8::1/32", DEFAULT, C.host_bits_set, "v6-host-bits"),
    # private
    ("10.1.0.0/16", DEFAULT, C.private, "v4-rfc1918-10"),
    ("172.16.5.0/24", DEFAULT, C.private, "v4-rfc1918-172"),
    ("192.168.1.0/24", DEFAULT, C.private, "v4-rfc1918-192"),
    ("fd12:3456:789a::/48", DEFAULT, C.private, "v6-unique-local"),
    # loopback
    ("127.0.0.1", DEFAULT, C.loopback, "v4-loopback"),
    ("::1", DEFAULT, C.loopback, "v6-loopback"),
    # link-local
    ("169.254.10.0/24", DEFAULT, C.link_local, "v4-link-local"),
    ("fe80::/64", DEFAULT, C.link_local, "v6-link-local"),
    # multicast
    ("224.0.0.0/24", DEFAULT, C.multicast, "v4-multicast"),
    ("ff02::1", DEFAULT, C.multicast, "v6-multicast"),
    # cgnat
    ("100.64.0.0/22", DEFAULT, C.cgnat, "v4-cgnat"),
    ("100.127.255.0/24", DEFAULT, C.cgnat, "v4-cgnat-top"),
    # unspecified
    ("0.0.0.0", DEFAULT, C.unspecified, "v4-unspecified"),
    ("0.1.2.0/24", DEFAULT, C.unspecified, "v4-this-network"),
    ("::", DEFAULT, C.unspecified, "v6-unspecified"),
    # broadcast
    ("255.255.255.255", DEFAULT, C.broadcast, "v4-broadcast"),
    # documentation
    ("192.0.2.0/24", DEFAULT, C.documentation, "v4-test-net-1"),
    ("198.51.100.0/24", DEFAULT, C.documentation, "v4-test-net-2"),
    ("203.0.113.0/25", DEFAULT, C.documentation, "v4-test-net-3"),
    ("198.51.100.0/22", DEFAULT, C.documentation, "v4-overlaps-doc"),
    ("2001:db8:1::/48", DEFAULT, C.documentation, "v6-doc-2001-db8"),
    ("3fff:1::/48", DEFAULT, C.documentation, "v6-doc-3fff"),
    # reserved
    ("240.0.0.0/24", DEFAULT, C.reserved, "v4-class-e"),
    ("1000::/48", DEFAULT, C.reserved, "v6-below-2000"),
    ("4000::/48", DEFAULT, C.reserved, "v6-above-3fff"),
    ("fec0::/48", DEFAULT, C.reserved, "v6-old-site-local"),
    # special purpose
    ("192.0.0.0/24", DEFAULT, C.special_purpose, "v4-ietf-protocol"),
    ("192.0.0.9", DEFAULT, C.special_purpose, "v4-pcp-anycast-globally-reachable"),
    ("192.31.196.0/24", DEFAULT, C.special_purpose, "v4-as112"),
    ("192.52.193.0/24", DEFAULT, C.special_purpose, "v4-amt"),
    ("192.88.99.0/24", DEFAULT, C.special_purpose, "v4-6to4-relay"),
    ("192.175.48.0/24", DEFAULT, C.special_purpose, "v4-as112-direct"),
    ("198.18.0.0/22", DEFAULT, C.special_purpose, "v4-benchmarking"),
    ("192.0.0.0/22", DEFAULT, C.special_purpose, "v4-overlaps-special-and-doc"),
    ("192.0.0.0/22", DOCS, C.special_purpose, "v4-overlaps-special-docs-allowed"),
    ("2001::/32", DEFAULT, C.special_purpose, "v6-teredo"),
    ("2001:4:112::/48", DEFAULT, C.special_purpose, "v6-as112-globally-reachable"),
    ("2002:c000:204::/48", DEFAULT, C.special_purpose, "v6-6to4"),
    ("64:ff9b::c000:201", DEFAULT, C.special_purpose, "v6-nat64"),
    ("::ffff:203.0.113.7", DEFAULT, C.special_purpose, "v6-ipv4-mapped"),
    ("::ffff:0:0/96", DEFAULT, C.special_purpose, "v6-ipv4-mapped-block"),
    ("::ffff:8.8.8.0/120", DEFAULT, C.special_purpose, "v6-ipv4-mapped-public-prefix"),
    ("::ffff:808:800/120", DEFAULT, C.special_purpose, "v6-ipv4-mapped-hex-form"),
    ("::8.8.8.0/120", DEFAULT, C.reserved, "v6-ipv4-compatible-deprecated"),
    ("64:ff9b:1::/48", DEFAULT, C.special_purpose, "v6-local-nat64"),
    ("100::/64", DEFAULT, C.special_purpose, "v6-discard-only"),
    ("2002::/16", DEFAULT, C.special_purpose, "v6-6to4-block"),
    ("5f00::/48", DEFAULT, C.special_purpose, "v6-srv6"),
    ("2620:4f:8000::/48", DEFAULT, C.special_purpose, "v6-as112-direct"),
    # too broad
    ("8.8.0.0/21", DEFAULT, C.too_broad, "v4-limit-21"),
    ("0.0.0.0/0", DEFAULT, C.too_broad, "v4-default-route"),
    ("2a00::/39", DEFAULT, C.too_broad, "v6-limit-39"),
    ("::/0", DEFAULT, C.too_broad, "v6-default-route"),
    ("8.8.8.0/23", NARROW, C.too_broad, "custom-v4-limit"),
    ("2a00:1450::/47", NARROW, C.too_broad, "custom-v6-limit"),
    ("2001:db8::/32", DOCS, C.too_broad, "doc-allowed-but-too-broad"),
    # allowing documentation allows nothing else
    ("10.0.0.0/24", DOCS, C.private, "docs-allowed-private-still-refused"),
]


@pytest.mark.parametrize(
    ("text", "policy", "expected"),
    [pytest.param(text, policy, expected, id=name) for text, policy, expected, name in CASES],
)
def test_validate_prefix(text: str, policy: PrefixPolicy, expected: object) -> None:
    if isinstance(expected, ReasonCode):
        with pytest.raises(PrefixError) as caught:
            validate_prefix(text, policy)
        error = caught.value
        assert error.code is expected
        assert error.value == text
        assert "\n" not in str(error)
        assert str(error)
        if expected is not C.host_bits_set:
            assert error.normalised is None
        if expected not in (C.malformed, C.host_bits_set):
            network = parse_prefix(text)
            assert refusal_reason(network, policy) is expected
    else:
        network = validate_prefix(text, policy)
        assert network == ipaddress.ip_network(expected)
        assert refusal_reason(network, policy) is None


def test_every_reason_code_is_covered_for_both_families() -> None:
    seen = {(expected, ":" in text) for text, _, expected, _ in CASES}
    for code in ReasonCode:
        assert (code, False) in seen, code
        if code not in (C.cgnat, C.broadcast):  # IPv4-only notions
            assert (code, True) in seen, code


@pytest.mark.parametrize(
    ("text", "normalised", "message"),
    [
        pytest.param(
            "203.0.113.7/24",
            "203.0.113.0/24",
            "203.0.113.7/24 has host bits set; did you mean 203.0.113.0/24?",
            id="v4",
        ),
        pytest.param(
            "2001:db8::1/32",
            "2001:db8::/32",
            "2001:db8::1/32 has host bits set; did you mean 2001:db8::/32?",
            id="v6",
        ),
    ],
)
def test_host_bits_are_never_silently_cleared(text: str, normalised: str, message: str) -> None:
    with pytest.raises(PrefixError) as caught:
        parse_prefix(text)
    assert caught.value.code is C.host_bits_set
    assert caught.value.normalised == normalised
    assert str(caught.value) == message


def test_ipv4_mapped_message_names_the_ipv4_prefix() -> None:
    with pytest.raises(PrefixError, match=r"register the IPv4 prefix 203\.0\.113\.7/32"):
        validate_prefix("::ffff:203.0.113.7", DEFAULT)


def test_too_broad_message_names_the_limit() -> None:
    with pytest.raises(PrefixError, match=r"/24 or longer"):
        validate_prefix("8.8.8.0/23", NARROW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("192.0.2.1", ipaddress.IPv4Address("192.0.2.1"), id="v4"),
        pytest.param(" 2001:db8::1 ", ipaddress.IPv6Address("2001:db8::1"), id="v6-whitespace"),
        pytest.param("192.0.2.0/24", C.malformed, id="prefix-is-not-an-address"),
        pytest.param("fe80::1%1", C.malformed, id="scope-id"),
        pytest.param("x", C.malformed, id="garbage"),
    ],
)
def test_parse_address(text: str, expected: object) -> None:
    if isinstance(expected, ReasonCode):
        with pytest.raises(PrefixError) as caught:
            parse_address(text)
        assert caught.value.code is expected
        assert caught.value.value == text
    else:
        assert parse_address(text) == expected


@pytest.mark.parametrize("special", [pytest.param(s, id=str(s.network)) for s in SPECIAL_RANGES])
def test_every_special_range_is_refused_with_its_own_code(special: object) -> None:
    from vpnreg.core.ipspace.special import SpecialRange

    assert isinstance(special, SpecialRange)
    assert refusal_reason(special.network, DEFAULT) is special.code
    if special.code is C.documentation:
        allowed = refusal_reason(special.network, DOCS)
        assert allowed is (None if special.network.version == 4 else C.too_broad)


def test_reason_code_values_are_lower_snake() -> None:
    assert [c.value for c in ReasonCode] == [c.name for c in ReasonCode]
    assert ReasonCode("too_broad") is C.too_broad


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"max_v4": 33}, id="v4-over-32"),
        pytest.param({"max_v6": -1}, id="v6-negative"),
    ],
)
def test_policy_refuses_impossible_limits(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be within"):
        PrefixPolicy(**kwargs)  # type: ignore[arg-type]


def test_prefix_error_survives_pickling() -> None:
    with pytest.raises(PrefixError) as caught:
        parse_prefix("203.0.113.7/24")
    copy = pickle.loads(pickle.dumps(caught.value))  # noqa: S301 - our own object
    assert (copy.code, copy.value, copy.normalised, str(copy)) == (
        C.host_bits_set,
        "203.0.113.7/24",
        "203.0.113.0/24",
        str(caught.value),
    )
