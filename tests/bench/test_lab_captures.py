"""bench_lab_accuracy's pure parts: one capture's score, the tallies, the report, the scenarios."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bench.bench_lab_accuracy import CaptureScore, Tally, report, score_capture, tally
from bench.labcaptures import SCENARIOS, Made, Role

from vpnreg.core.protocols import VpnProtocol


def row(
    *,
    vpn: bool = False,
    protocol: str = "none",
    basis: str = "TLS: not a VPN protocol",
    rule: str = "not-vpn",
    src: str = "198.51.100.2",
    application: str = "TLS",
) -> dict[str, Any]:
    """One row shaped as `verdict_rows` yields it (only the keys the scoring reads)."""
    return {
        "src_ip": src,
        "application": application,
        "vpn": vpn,
        "vpn_protocol": protocol,
        "basis": basis,
        "classification_rule": rule,
    }


WG = row(vpn=True, protocol="wireguard", basis="WireGuard message types and sizes",
         rule="wireguard-msg", application="WireGuard")  # fmt: skip
OVPN = row(vpn=True, protocol="openvpn", basis="OpenVPN hard-reset opcodes, client and server",
           rule="openvpn-reset", application="OpenVPN")  # fmt: skip
MLD = row(src="fe80::1", basis="ICMPV6: not a VPN protocol", application="ICMPV6")
GUESS = row(basis="VPN label OpenVPN only guessed by nDPI (match_by_port)", rule="guess-refused",
            application="OpenVPN")  # fmt: skip


def score(name: str, protocol: str, role: Role, *rows: dict[str, Any]) -> CaptureScore:
    return score_capture(name=name, protocol=protocol, role=role, rows=list(rows))


@pytest.mark.parametrize(
    ("rows", "protocol", "detected", "right", "vpn_flows", "basis"),
    [
        pytest.param([WG, MLD], "wireguard", True, True, 1,
                     "wireguard (WireGuard message types and sizes, rule wireguard-msg)",
                     id="vpn-flow-found"),
        pytest.param([OVPN, MLD], "wireguard", True, False, 1,
                     "openvpn (OpenVPN hard-reset opcodes, client and server, rule openvpn-reset)",
                     id="wrong-protocol"),
        pytest.param([GUESS, MLD], "openvpn", False, False, 0,
                     "VPN label OpenVPN only guessed by nDPI (match_by_port)",
                     id="miss-basis-skips-link-local"),
        pytest.param([MLD], "wireguard", False, False, 0, "ICMPV6: not a VPN protocol",
                     id="only-link-local-left"),
        pytest.param([], "wireguard", False, False, 0, "no flow", id="empty-capture"),
    ],
)  # fmt: skip
def test_score_capture(
    rows: list[dict[str, Any]],
    protocol: str,
    detected: bool,
    right: bool,
    vpn_flows: int,
    basis: str,
) -> None:
    s = score("c", protocol, Role.VPN, *rows)
    assert (s.detected, s.protocol_right, s.vpn_flows, s.flows) == (
        detected, right, vpn_flows, len(rows),
    )  # fmt: skip
    assert s.basis == basis


WG_HIT = score("wg", "wireguard", Role.VPN, WG)
WG_MISS = score("wg2", "wireguard", Role.VPN, MLD)
OVPN_HIT = score("ov", "openvpn", Role.VPN, OVPN)
STATIC_MISS = score("static", "openvpn", Role.APART, GUESS)
STATIC_HIT = score("static2", "openvpn", Role.APART, OVPN)
CLEAN = score("http", "none", Role.NOT_VPN, row())
FALSE_WG = score("scan", "none", Role.NOT_VPN, WG)


@pytest.mark.parametrize(
    ("scores", "protocol", "expected", "precision", "recall"),
    [
        pytest.param([WG_HIT, OVPN_HIT, CLEAN], None, Tally(2, 0, 0, 1), 1.0, 1.0, id="perfect"),
        pytest.param([WG_HIT, WG_MISS, CLEAN], None, Tally(1, 0, 1, 1), 1.0, 0.5, id="one-miss"),
        pytest.param([WG_HIT, FALSE_WG, CLEAN], None, Tally(1, 1, 0, 1), 0.5, 1.0,
                     id="one-false-positive"),
        pytest.param([WG_HIT, STATIC_MISS, STATIC_HIT], None, Tally(1, 0, 0, 0), 1.0, 1.0,
                     id="static-key-not-counted"),
        pytest.param([WG_HIT, WG_MISS, OVPN_HIT, FALSE_WG], "wireguard", Tally(1, 1, 1, 0),
                     0.5, 0.5, id="per-protocol-wireguard"),
        pytest.param([WG_HIT, OVPN_HIT, FALSE_WG], "openvpn", Tally(1, 0, 0, 1), 1.0, 1.0,
                     id="false-positive-of-other-protocol"),
        pytest.param([CLEAN], None, Tally(0, 0, 0, 1), None, None, id="no-positives"),
    ],
)  # fmt: skip
def test_tally(
    scores: list[CaptureScore],
    protocol: str | None,
    expected: Tally,
    precision: float | None,
    recall: float | None,
) -> None:
    t = tally(scores, protocol=protocol)
    assert t == expected
    assert (t.precision, t.recall) == (precision, recall)


def scenario(name: str) -> Any:
    return next(s for s in SCENARIOS if s.name == name)


def test_report_lists_misses_false_positives_and_gaps() -> None:
    wg, ping, ipsec = scenario("wireguard"), scenario("ping"), scenario("ipsec ikev2")
    made = [
        Made(wg, Path("wg.pcap"), "handshake and pings", 19),
        Made(ping, Path("ping.pcap"), "5 pings", 12),
        Made(ipsec, None, "not captured: swanctl not installed"),
    ]
    scores = [
        score("wireguard", "wireguard", Role.VPN, GUESS),
        score("ping", "none", Role.NOT_VPN, WG),
    ]
    text = report(made, scores, 3.0)
    misses = text.split("### Misses")[1].split("###")[0]
    fps = text.split("### False positives")[1].split("###")[0]
    gaps = text.split("### Not captured")[1].split("###")[0]
    assert "- wireguard: VPN label OpenVPN only guessed by nDPI (match_by_port)." in misses
    assert "- ping: wireguard (WireGuard message types and sizes" in fps
    assert "- ipsec ikev2: not captured: swanctl not installed" in gaps
    assert "| **all (file level)** | 1 | 0 | 1 | 1 | 0.00 | 0.00 | no |" in text
    assert "| ipsec ikev2 | vpn | ipsec | - | - | not captured | - |" in text


def test_report_says_none_when_clean() -> None:
    made = [Made(scenario("wireguard"), Path("wg.pcap"), "ok", 19)]
    text = report(made, [score("wireguard", "wireguard", Role.VPN, WG, MLD)], 1.0)
    assert "### Misses\n\n- none" in text
    assert "### False positives\n\n- none" in text
    assert "| **all (file level)** | 1 | 1 | 0 | 0 | 1.00 | 1.00 | yes |" in text


def test_scenarios_cover_the_brief() -> None:
    names = {s.name for s in SCENARIOS}
    assert len(names) == len(SCENARIOS)
    by_role = {role: {s.name for s in SCENARIOS if s.role is role} for role in Role}
    assert by_role[Role.APART] == {"openvpn static-key udp", "openvpn static-key tcp"}
    assert {"wireguard", "wireguard mid-session", "openvpn tls udp", "openvpn tls tcp",
            "openvpn tls udp mid-session", "openvpn tls tcp mid-session",
            "ipsec ikev2", "openconnect ocserv"} == by_role[Role.VPN]  # fmt: skip
    assert {"ping", "http", "dns-like udp", "tls", "ssh", "bulk tcp", "port-scan"} == by_role[
        Role.NOT_VPN
    ]
    for s in SCENARIOS:
        expected = VpnProtocol(s.protocol)
        assert (expected is VpnProtocol.NONE) == (s.role is Role.NOT_VPN), s.name
