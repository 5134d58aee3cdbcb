"""Binding events: each field's check, the end time's default and limits, the CGNAT rule."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest

from vpnreg.core.bindings import (
    BindingError,
    BindingEvent,
    EventKind,
    bindings_collide,
    check_event,
    check_subscriber_id,
    parse_protocols,
    port_covered,
)
from vpnreg.core.ipspace import PrefixPolicy
from vpnreg.core.protocols import VpnProtocol

NOW = dt.datetime(2026, 1, 15, 9, 0, 0, 250_000, tzinfo=dt.UTC)
POLICY = PrefixPolicy(allow_documentation=True)


def event(**changes: object) -> BindingEvent:
    fields: dict[str, object] = {
        "event": "start",
        "subscriber_id": "SUB-123",
        "session_id": "s1",
        "address": "198.51.100.7",
    }
    fields.update(changes)
    return BindingEvent(**fields)  # type: ignore[arg-type]


def test_a_bare_address_is_a_host_prefix_and_the_end_defaults_to_24_hours_whole_seconds() -> None:
    checked = check_event(event(), now=NOW, policy=POLICY)
    assert checked.kind is EventKind.START
    assert checked.network == ipaddress.ip_network("198.51.100.7/32")
    assert checked.ports is None
    assert checked.valid_until == dt.datetime(2026, 1, 16, 9, 0, tzinfo=dt.UTC)


def test_an_end_within_24_hours_is_kept_in_utc() -> None:
    until = dt.datetime(2026, 1, 15, 19, 30, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    checked = check_event(event(until=until, ports=(1024, 2047)), now=NOW, policy=POLICY)
    assert checked.valid_until == dt.datetime(2026, 1, 15, 14, 30, tzinfo=dt.UTC)
    assert checked.ports == (1024, 2047)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        pytest.param({"event": "begin"}, "event", "not one of start", id="unknown-event"),
        pytest.param({"subscriber_id": ""}, "subscriber_id", "not a subscriber id", id="empty-sub"),
        pytest.param({"subscriber_id": "a b"}, "subscriber_id", "not a subscriber id", id="space"),
        pytest.param({"subscriber_id": "x" * 65}, "subscriber_id", "65 characters", id="long-sub"),
        pytest.param({"subscriber_id": 7}, "subscriber_id", "int", id="number-sub"),
        pytest.param({"session_id": "a\nb"}, "session_id", "not a session id", id="newline"),
        pytest.param({"session_id": "s" * 129}, "session_id", "not a session id", id="long-sess"),
        pytest.param({"address": "10.1.2.3"}, "address", "private", id="private"),
        pytest.param({"address": "100.64.0.1"}, "address", "100.64.0.0/10", id="cgnat-space"),
        pytest.param({"address": "198.51.100.7/24"}, "address", "host bits", id="host-bits"),
        pytest.param({"address": "198.0.0.0/8"}, "address", "too broad", id="too-broad"),
        pytest.param({"address": "nonsense"}, "address", "not a valid", id="malformed"),
        pytest.param({"ports": (2048, 1024)}, "ports", "lo <= hi", id="ports-reversed"),
        pytest.param({"ports": (0, 65536)}, "ports", "65535", id="ports-too-high"),
        pytest.param({"ports": (-1, 5)}, "ports", "0 <= lo", id="ports-negative"),
        pytest.param({"ports": (1,)}, "ports", "pair", id="ports-one"),
        pytest.param({"ports": (True, 5)}, "ports", "pair", id="ports-bool"),
        pytest.param(
            {"until": dt.datetime(2026, 1, 15, 10, 0)}, "until", "time zone", id="until-naive"
        ),
        pytest.param(
            {"until": dt.datetime(2026, 1, 15, 8, 59, tzinfo=dt.UTC)}, "until", "future", id="past"
        ),
        pytest.param(
            {"until": dt.datetime(2026, 1, 16, 9, 0, 1, tzinfo=dt.UTC)},
            "until",
            "24 hours",
            id="beyond-24h",
        ),
    ],
)
def test_bad_fields_are_refused_with_the_field_named(
    changes: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(BindingError) as caught:
        check_event(event(**changes), now=NOW, policy=POLICY)
    assert caught.value.field == field
    assert words in caught.value.message


def test_the_latest_end_allowed_is_exactly_24_hours_ahead() -> None:
    until = dt.datetime(2026, 1, 16, 9, 0, tzinfo=dt.UTC)
    assert check_event(event(until=until), now=NOW, policy=POLICY).valid_until == until


def test_subscriber_ids_of_64_safe_characters_pass() -> None:
    text = "A" + "b1._:@/+-" * 7
    assert len(text) == 64
    assert check_subscriber_id(text) == text


N = ipaddress.ip_network


@pytest.mark.parametrize(
    ("a", "b", "collide"),
    [
        pytest.param((N("198.51.100.7/32"), None), (N("198.51.100.7/32"), None), True, id="same"),
        pytest.param(
            (N("198.51.100.7/32"), (1024, 2047)),
            (N("198.51.100.7/32"), (2048, 3071)),
            False,
            id="port-blocks-apart",
        ),
        pytest.param(
            (N("198.51.100.7/32"), (1024, 2047)),
            (N("198.51.100.7/32"), (2047, 3071)),
            True,
            id="port-blocks-share-one",
        ),
        pytest.param(
            (N("198.51.100.7/32"), None),
            (N("198.51.100.7/32"), (2048, 3071)),
            True,
            id="whole-address-vs-block",
        ),
        pytest.param(
            (N("198.51.100.0/24"), (1024, 2047)),
            (N("198.51.100.7/32"), (1024, 2047)),
            True,
            id="prefix-holds-address",
        ),
        pytest.param((N("198.51.100.7/32"), None), (N("198.51.100.8/32"), None), False, id="apart"),
        pytest.param(
            (N("2001:db8::/64"), None), (N("198.51.100.7/32"), None), False, id="families"
        ),
    ],
)
def test_the_cgnat_overlap_rule(
    a: tuple[ipaddress.IPv4Network, tuple[int, int] | None],
    b: tuple[ipaddress.IPv4Network, tuple[int, int] | None],
    collide: bool,
) -> None:
    assert bindings_collide(a, b) is collide
    assert bindings_collide(b, a) is collide


@pytest.mark.parametrize(
    ("ports", "port", "covered"),
    [
        (None, None, True),
        (None, 80, True),
        ((1024, 2047), 1024, True),
        ((1024, 2047), 2047, True),
        ((1024, 2047), 2048, False),
        ((1024, 2047), None, True),
    ],
)
def test_port_covered(ports: tuple[int, int] | None, port: int | None, covered: bool) -> None:
    assert port_covered(ports, port) is covered


def test_protocols_come_back_in_canonical_order_without_duplicates() -> None:
    got = parse_protocols(["wireguard", "openvpn", "wireguard"])
    assert got == (VpnProtocol.OPENVPN, VpnProtocol.WIREGUARD)
    assert parse_protocols([]) == ()
    with pytest.raises(BindingError, match="'none' is not one of"):
        parse_protocols(["none"])
    with pytest.raises(BindingError, match="must be a list"):
        parse_protocols("openvpn")
