"""Golden classification of the nDPI corpus, and file-level precision/recall expectations."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.golden.corpus import dump, load_golden, manifest

#: One classification pass over the whole nDPI corpus through NFStream.
pytestmark = pytest.mark.slow

#: VPN captures the rules detect, with the protocols found in them.
EXPECTED_DETECTIONS: dict[str, set[str]] = {
    "443-opvn.pcap": {"openvpn"},
    "openvpn.pcap": {"openvpn"},
    "openvpn-tlscrypt.pcap": {"openvpn"},
    "openvpn_nohmac.pcapng": {"openvpn"},
    "openvpn_nohmac_tcp.pcapng": {"openvpn"},
    "wireguard.pcap": {"wireguard"},
    "mullvad_wireguard.pcap": {"wireguard"},
    "protonvpn.pcap": {"wireguard"},
    "esp.pcapng": {"ipsec"},
    "ah.pcapng": {"ipsec"},
    "ipsec_isakmp_esp.pcap": {"ipsec"},
    "ipv6_in_gtp.pcap": {"ipsec"},
    "custom_categories.pcapng": {"ipsec"},
    "pptp.pcap": {"pptp"},
    "softether.pcap": {"other-vpn"},
    "anyconnect-vpn.pcap": {"other-vpn"},
    "tailscale.pcap": {"other-vpn"},
    "tinc.pcap": {"other-vpn"},
    "cloudflare-warp.pcap": {"other-vpn"},
    "tunnelbear.pcap": {"wireguard"},
    "ossfuzz_seed_fake_traces_2.pcapng": {"wireguard"},
}

#: VPN captures whose only VPN traces are a vendor's TLS service: an app's API call looks exactly
#: like a visit to the vendor's web site (see sites.pcapng), so honest rules do not flag them.
KNOWN_MISSES = {"forticlient.pcap", "opera-vpn.pcapng", "pia.pcap", "windscribe.pcapng"}

#: Manifest labels the rules disagree with, with the evidence.
DISPUTED = {
    "gre.pcapng": "GRE version 1 with protocol 0x880b carrying PPP (ff03 0021): PPTP's data "
    "channel (RFC 2637), not generic GRE",
}

REQUIRED_KEYS = {
    "file",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "ip_protocol",
    "application",
    "vpn",
    "vpn_protocol",
    "basis",
}


def _vpn_protocols_by_file(rows: list[dict[str, Any]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row["vpn"]:
            found[row["file"]].add(row["vpn_protocol"])
    return found


def test_golden_file_matches_classification(corpus_rows: list[dict[str, Any]]) -> None:
    # A readable first failure: which file differs, then the exact comparison.
    golden = load_golden()
    for expected, actual in zip(golden, corpus_rows, strict=False):
        assert actual == expected, f"first difference in {expected['file']}"
    assert len(corpus_rows) == len(golden)
    assert dump(corpus_rows) == dump(golden)


def test_every_manifest_capture_is_in_the_golden_file(corpus_dir: Path) -> None:
    files = {row["file"] for row in load_golden()}
    assert files == {c.file for c in manifest(corpus_dir)}


def test_rows_carry_the_documented_fields(corpus_rows: list[dict[str, Any]]) -> None:
    for row in corpus_rows:
        assert row.keys() >= REQUIRED_KEYS
        assert row["vpn"] == (row["vpn_protocol"] != "none")


def test_no_vpn_flow_in_non_vpn_captures(
    corpus_dir: Path, corpus_rows: list[dict[str, Any]]
) -> None:
    found = _vpn_protocols_by_file(corpus_rows)
    negatives = [c for c in manifest(corpus_dir) if not c.is_vpn and c.file not in DISPUTED]
    assert {c.group for c in negatives} == {"tunnel-not-vpn", "hard-negative", "common"}
    false_positives = {c.file: found[c.file] for c in negatives if c.file in found}
    assert false_positives == {}


def test_disputed_gre_capture_is_pptp(corpus_rows: list[dict[str, Any]]) -> None:
    rows = [r for r in corpus_rows if r["file"] == "gre.pcapng"]
    assert [(r["vpn_protocol"], r["classification_rule"]) for r in rows] == [("pptp", "gre-ppp")]


def test_vpn_captures_detected_as_listed(
    corpus_dir: Path, corpus_rows: list[dict[str, Any]]
) -> None:
    found = _vpn_protocols_by_file(corpus_rows)
    vpn_files = {c.file for c in manifest(corpus_dir) if c.is_vpn}
    detected = {f: p for f, p in found.items() if f in vpn_files}
    assert detected == EXPECTED_DETECTIONS
    assert vpn_files - detected.keys() == KNOWN_MISSES


def test_port_guessed_vpn_labels_are_refused(corpus_rows: list[dict[str, Any]]) -> None:
    # synscan.pcap: single SYNs to VPN ports get CiscoVPN/IPSec labels by port only.
    guessed = [
        r
        for r in corpus_rows
        if r["file"] == "synscan.pcap" and r["category"] == "VPN" and r["confidence"] == 1
    ]
    assert guessed
    assert all(not r["vpn"] and r["classification_rule"] == "guess-refused" for r in guessed)


def test_vendor_web_visits_are_not_vpn(corpus_rows: list[dict[str, Any]]) -> None:
    vendor = [r for r in corpus_rows if r["file"] == "sites.pcapng" and r["category"] == "VPN"]
    assert {r["application"] for r in vendor} >= {"TLS.NordVPN", "TLS.SurfShark"}
    assert all(r["classification_rule"] == "vendor-web" for r in vendor)


def test_anyconnect_dtls_joins_its_tls_channel(corpus_rows: list[dict[str, Any]]) -> None:
    rows = [r for r in corpus_rows if r["file"] == "anyconnect-vpn.pcap" and r["vpn"]]
    # The TLS (CSTP) flows were handed over before the DTLS channel existed; DTLS joins them.
    assert [(r["ip_protocol"], r["application"], r["classification_rule"]) for r in rows] == [
        (17, "DTLS", "ssl-vpn-pair")
    ]


def test_ndpi_labels_without_two_sided_evidence_are_unconfirmed(
    corpus_rows: list[dict[str, Any]],
) -> None:
    # openvpn.pcap: two halves of one NATed session, each flow carrying one direction only, and
    # a tls-crypt TCP flow whose server reset the plugin does not see as its first segment
    rows = [r for r in corpus_rows if r["classification_rule"] == "ndpi-unconfirmed"]
    assert [(r["file"], r["ip_protocol"], r["application"]) for r in rows] == [
        ("openvpn.pcap", 17, "OpenVPN"),
        ("openvpn.pcap", 17, "OpenVPN"),
        ("openvpn.pcap", 6, "OpenVPN"),
    ]
    assert all(not r["vpn"] and r["vpn_protocol"] == "none" for r in rows)


def test_ike_is_confirmed_by_the_reply(corpus_rows: list[dict[str, Any]]) -> None:
    ike = [r for r in corpus_rows if r["classification_rule"] == "ike-header"]
    assert ike and all(r["packets_to_verdict"] == 2 for r in ike)


def test_verdicts_come_at_detection_not_expiry(corpus_rows: list[dict[str, Any]]) -> None:
    # Long flows are handed over after a handful of packets, not when they time out.
    long_vpn = [
        r
        for r in corpus_rows
        if r["file"] in {"openvpn_nohmac.pcapng", "tailscale.pcap", "forticlient.pcap"}
    ]
    assert long_vpn
    assert all(r["handover"] == "detection" and r["packets_to_verdict"] <= 16 for r in long_vpn)
