"""Gateway report counting (core.gateway_report): pure, over decisions, with the hour passed in."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json

import pytest

from vpnreg.core.gateway_report import (
    CountKey,
    ReportError,
    check_prefix,
    count_key,
    count_rows,
    hour_of,
    tally,
)
from vpnreg.core.policy import Action, Decision, FlowKey, Rule, Verdict

HOME = (ipaddress.ip_network("198.51.100.0/23"), ipaddress.ip_network("2001:db8:5::/48"))
HOUR = dt.datetime(2026, 12, 4, 16, tzinfo=dt.UTC)


def flow(src: str, dst: str, sport: int = 51820, dport: int = 40000) -> FlowKey:
    return FlowKey(ipaddress.ip_address(src), sport, ipaddress.ip_address(dst), dport, 17)


def decision(verdict: Verdict, registration_id: int | None = None) -> Decision:
    action = Action.BLOCK if verdict is Verdict.UNREGISTERED else Action.PASS
    return Decision(verdict, action, Rule.NOT_REGISTERED, registration_id, 7, "test")


@pytest.mark.parametrize(
    ("the_flow", "the_decision", "expected"),
    [
        pytest.param(
            flow("198.51.100.9", "203.0.113.5"),
            decision(Verdict.REGISTERED, 12),
            CountKey(HOUR, "wireguard", "registered", registration_id=12),
            id="registered-by-registration",
        ),
        pytest.param(
            flow("198.51.100.9", "203.0.113.5"),
            decision(Verdict.UNREGISTERED, 12),
            CountKey(HOUR, "wireguard", "unregistered", registration_id=12),
            id="blocked-despite-registration-counts-under-it",
        ),
        pytest.param(
            flow("203.0.113.5", "198.51.101.77"),
            decision(Verdict.UNREGISTERED),
            CountKey(HOUR, "wireguard", "unregistered", prefix="198.51.101.0/24"),
            id="unregistered-ipv4-domestic-24-either-side",
        ),
        pytest.param(
            flow("2001:db8:5:abcd::9", "2001:db8:ffff::1"),
            decision(Verdict.UNREGISTERED),
            CountKey(HOUR, "wireguard", "unregistered", prefix="2001:db8:5::/48"),
            id="unregistered-ipv6-domestic-48",
        ),
        pytest.param(
            flow("203.0.113.5", "192.0.2.1"),
            decision(Verdict.NOT_DOMESTIC),
            CountKey(HOUR, "wireguard", "not-domestic"),
            id="not-domestic-without-address",
        ),
        pytest.param(
            flow("198.51.100.9", "203.0.113.5"),
            decision(Verdict.NOT_VPN),
            None,
            id="not-vpn-not-counted",
        ),
    ],
)
def test_count_key(the_flow: FlowKey, the_decision: Decision, expected: CountKey | None) -> None:
    key = count_key(
        decision=the_decision, flow=the_flow, vpn_protocol="wireguard", home=HOME, hour=HOUR
    )
    assert key == expected


def test_rows_carry_no_port_and_no_foreign_address() -> None:
    flows = [
        (flow("198.51.100.9", "203.0.113.5", 51820, 41234), decision(Verdict.REGISTERED, 3)),
        (flow("203.0.113.6", "198.51.100.10", 1194, 45678), decision(Verdict.UNREGISTERED)),
        (flow("198.51.100.11", "203.0.113.7", 51820, 41235), decision(Verdict.UNREGISTERED)),
        (flow("192.0.2.8", "203.0.113.9", 4500, 4500), decision(Verdict.NOT_DOMESTIC)),
    ]
    counts = tally(
        count_key(decision=d, flow=f, vpn_protocol="openvpn", home=HOME, hour=HOUR)
        for f, d in flows
    )
    rows = count_rows(counts)
    text = json.dumps(rows)
    for f, _ in flows:
        for address in (f.src_ip, f.dst_ip):
            assert str(address) not in text
        for port in (f.src_port, f.dst_port):
            assert str(port) not in text
    assert rows == [
        {"hour": "2026-12-04T16:00:00Z", "protocol": "openvpn", "verdict": "not-domestic",
         "flows": 1},
        {"hour": "2026-12-04T16:00:00Z", "protocol": "openvpn", "verdict": "registered",
         "registration_id": 3, "flows": 1},
        {"hour": "2026-12-04T16:00:00Z", "protocol": "openvpn", "verdict": "unregistered",
         "prefix": "198.51.100.0/24", "flows": 2},
    ]  # fmt: skip


def test_hour_of_truncates_to_the_utc_hour() -> None:
    local = dt.datetime(2026, 12, 4, 18, 59, 59, 999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert hour_of(local) == HOUR
    with pytest.raises(ReportError):
        hour_of(dt.datetime(2026, 12, 4, 16))


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("198.51.100.0/24", True),
        ("2001:db8:5::/48", True),
        ("198.51.100.7/32", False),
        ("198.51.100.1/24", False),
        ("2001:db8::/32", False),
        ("2001:0db8:5::/48", False),
        ("nonsense", False),
    ],
)
def test_check_prefix(text: str, ok: bool) -> None:
    if ok:
        assert check_prefix(text) == text
    else:
        with pytest.raises(ReportError):
            check_prefix(text)
