"""Rules of core.classify over synthetic flow features (one row per case)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vpnreg.core.classify import (
    Classification,
    Confidence,
    FlowContext,
    FlowFeatures,
    VpnProtocol,
    classify,
    classify_stream,
)

CLIENT, SERVER, OTHER = "192.0.2.10", "198.51.100.20", "203.0.113.30"


def flow(**kw: object) -> FlowFeatures:
    base = FlowFeatures(
        ip_version=4,
        src_ip=CLIENT,
        src_port=50000,
        dst_ip=SERVER,
        dst_port=443,
        protocol=6,
        application_name="TLS",
        category_name="Web",
        confidence=Confidence.DPI,
        src2dst_packets=5,
        dst2src_packets=4,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


DPI = Confidence.DPI
PORT = Confidence.MATCH_BY_PORT

CASES = [
    # (id, flow, vpn_protocol, rule)
    (
        "openvpn-dpi-without-handshake-unconfirmed",
        flow(protocol=17, application_name="OpenVPN", category_name="VPN"),
        VpnProtocol.NONE,
        "ndpi-unconfirmed",
    ),
    (
        "openvpn-dpi-over-tcp-without-handshake-unconfirmed",
        flow(application_name="OpenVPN", category_name="VPN"),
        VpnProtocol.NONE,
        "ndpi-unconfirmed",
    ),
    (
        "openvpn-dpi-with-handshake",
        flow(protocol=17, application_name="OpenVPN", category_name="VPN", openvpn_handshake=True),
        VpnProtocol.OPENVPN,
        "openvpn-reset",
    ),
    (
        "ipsec-dpi-udp-without-ike-exchange-unconfirmed",
        flow(protocol=17, dst_port=500, application_name="IPSec", category_name="VPN"),
        VpnProtocol.NONE,
        "ndpi-unconfirmed",
    ),
    (
        "wireguard-dpi-answered-with-its-index",
        flow(
            protocol=17,
            application_name="WireGuard",
            category_name="VPN",
            wireguard_answered=True,
        ),
        VpnProtocol.WIREGUARD,
        "ndpi-vpn-protocol",
    ),
    (
        "openvpn-reset-opcodes-unlabelled",
        flow(
            protocol=17,
            application_name="Unknown",
            confidence=Confidence.UNKNOWN,
            openvpn_handshake=True,
        ),
        VpnProtocol.OPENVPN,
        "openvpn-reset",
    ),
    (
        "openvpn-data-channel-mid-session",
        flow(
            protocol=17,
            application_name="Unknown",
            confidence=Confidence.UNKNOWN,
            openvpn_data=True,
        ),
        VpnProtocol.OPENVPN,
        "openvpn-data",
    ),
    (
        "openvpn-data-channel-over-tcp-port-guess",
        flow(
            protocol=6,
            application_name="OpenVPN",
            category_name="VPN",
            confidence=PORT,
            openvpn_data=True,
        ),
        VpnProtocol.OPENVPN,
        "openvpn-data",
    ),
    (
        "wireguard-dpi-unanswered-unconfirmed",
        flow(protocol=17, application_name="WireGuard", category_name="VPN"),
        VpnProtocol.NONE,
        "ndpi-unconfirmed",
    ),
    (
        "wireguard-messages-on-odd-port",
        flow(
            protocol=17,
            dst_port=5060,
            application_name="SIP",
            category_name="VoIP",
            confidence=PORT,
            wireguard_handshake=True,
        ),
        VpnProtocol.WIREGUARD,
        "wireguard-msg",
    ),
    (
        "wireguard-partial-dpi-unconfirmed",
        flow(
            protocol=17,
            application_name="WireGuard",
            category_name="VPN",
            confidence=Confidence.DPI_PARTIAL,
            guessed=True,
        ),
        VpnProtocol.NONE,
        "ndpi-unconfirmed",
    ),
    (
        "ike-header",
        flow(
            protocol=17,
            dst_port=500,
            application_name="IPSec",
            category_name="VPN",
            ike_header=True,
        ),
        VpnProtocol.IPSEC,
        "ike-header",
    ),
    (
        "esp-in-udp-4500-from-behaviour",
        flow(
            protocol=17,
            dst_port=4500,
            application_name="IPSec",
            category_name="VPN",
            confidence=PORT,
            guessed=True,
            esp_in_udp=True,
        ),
        VpnProtocol.IPSEC,
        "esp-in-udp",
    ),
    (
        "esp-by-ip-protocol",
        flow(protocol=50, src_port=0, dst_port=0, application_name="ESP", category_name="VPN"),
        VpnProtocol.IPSEC,
        "ip-esp-ah",
    ),
    (
        "ah-by-ip-protocol",
        flow(protocol=51, src_port=0, dst_port=0, application_name="AH", category_name="VPN"),
        VpnProtocol.IPSEC,
        "ip-esp-ah",
    ),
    (
        "pptp-control-dpi",
        flow(dst_port=1723, application_name="PPTP", category_name="VPN"),
        VpnProtocol.PPTP,
        "ndpi-vpn-protocol",
    ),
    (
        "pptp-gre-with-ppp",
        flow(
            protocol=47,
            src_port=0,
            dst_port=0,
            application_name="GRE",
            category_name="Network",
            gre_ppp=True,
        ),
        VpnProtocol.PPTP,
        "gre-ppp",
    ),
    (
        "l2tp-control-header",
        flow(
            protocol=17,
            dst_port=1701,
            application_name="Unknown",
            confidence=Confidence.UNKNOWN,
            l2tp_control=True,
        ),
        VpnProtocol.L2TP,
        "l2tp-control",
    ),
    (
        "l2tp-dpi",
        flow(protocol=17, dst_port=1701, application_name="L2TP", category_name="VPN"),
        VpnProtocol.L2TP,
        "ndpi-vpn-protocol",
    ),
    (
        "softether-dpi",
        flow(protocol=17, application_name="Softether", category_name="VPN"),
        VpnProtocol.OTHER_VPN,
        "ndpi-vpn-other",
    ),
    (
        "tinc-dpi-cache",
        flow(application_name="TINC", category_name="VPN", confidence=Confidence.DPI_CACHE),
        VpnProtocol.OTHER_VPN,
        "ndpi-vpn-other",
    ),
    # --- not VPN ---
    (
        "gre-without-ppp",
        flow(protocol=47, src_port=0, dst_port=0, application_name="GRE", category_name="Network"),
        VpnProtocol.NONE,
        "generic-tunnel",
    ),
    (
        "ip-in-ip",
        flow(
            protocol=4,
            src_port=0,
            dst_port=0,
            application_name="Unknown",
            confidence=Confidence.UNKNOWN,
        ),
        VpnProtocol.NONE,
        "generic-tunnel",
    ),
    (
        "6in4",
        flow(
            protocol=41,
            src_port=0,
            dst_port=0,
            application_name="Unknown",
            confidence=Confidence.UNKNOWN,
        ),
        VpnProtocol.NONE,
        "generic-tunnel",
    ),
    (
        "teredo",
        flow(protocol=17, dst_port=3544, application_name="Teredo", category_name="Network"),
        VpnProtocol.NONE,
        "generic-tunnel",
    ),
    (
        "vxlan",
        flow(protocol=17, dst_port=4789, application_name="VXLAN", category_name="Network"),
        VpnProtocol.NONE,
        "generic-tunnel",
    ),
    (
        "port-guess-ciscovpn",
        flow(
            dst_port=10000,
            application_name="CiscoVPN",
            category_name="VPN",
            confidence=PORT,
            guessed=True,
            dst2src_packets=0,
        ),
        VpnProtocol.NONE,
        "guess-refused",
    ),
    (
        "port-guess-ipsec-on-4500-without-esp",
        flow(
            protocol=17,
            dst_port=4500,
            application_name="IPSec",
            category_name="VPN",
            confidence=PORT,
            guessed=True,
        ),
        VpnProtocol.NONE,
        "guess-refused",
    ),
    (
        "port-guess-openvpn",
        flow(
            protocol=17,
            dst_port=1194,
            application_name="OpenVPN",
            category_name="VPN",
            confidence=PORT,
            guessed=True,
        ),
        VpnProtocol.NONE,
        "guess-refused",
    ),
    (
        "ip-match-vendor",
        flow(
            application_name="NordVPN",
            category_name="VPN",
            confidence=Confidence.MATCH_BY_IP,
            guessed=True,
        ),
        VpnProtocol.NONE,
        "guess-refused",
    ),
    (
        "tls-vendor-web-visit",
        flow(application_name="TLS.NordVPN", category_name="VPN"),
        VpnProtocol.NONE,
        "vendor-web",
    ),
    (
        "http-vendor",
        flow(dst_port=80, application_name="HTTP.Softether", category_name="VPN"),
        VpnProtocol.NONE,
        "vendor-web",
    ),
    (
        "vendor-dns",
        flow(protocol=17, dst_port=53, application_name="DNS.Mullvad", category_name="Network"),
        VpnProtocol.NONE,
        "not-vpn",
    ),
    ("plain-tls", flow(), VpnProtocol.NONE, "not-vpn"),
    ("plain-dtls-alone", flow(protocol=17, application_name="DTLS"), VpnProtocol.NONE, "not-vpn"),
    (
        "unknown",
        flow(
            protocol=17,
            application_name="Unknown",
            category_name="Unspecified",
            confidence=Confidence.UNKNOWN,
        ),
        VpnProtocol.NONE,
        "unknown",
    ),
]


@pytest.mark.parametrize(
    ("features", "expected", "rule"),
    [pytest.param(f, p, r, id=i) for i, f, p, r in CASES],
)
def test_rule_table(features: FlowFeatures, expected: VpnProtocol, rule: str) -> None:
    verdict = classify(features)
    assert (verdict.vpn_protocol, verdict.rule) == (expected, rule)
    assert verdict.vpn == (expected is not VpnProtocol.NONE)
    assert verdict.basis
    # unconfirmed: not VPN (never blocked), the label's protocol kept as the suspicion
    assert verdict.unconfirmed == (rule == "ndpi-unconfirmed")
    if verdict.unconfirmed:
        assert verdict.suspected.value in verdict.basis
        assert verdict.suspected.value == features.master.lower()


def _observed(*flows: FlowFeatures) -> FlowContext:
    ctx = FlowContext()
    for f in flows:
        ctx.observe(f, classify(f, ctx))
    return ctx


PPTP_CONTROL = flow(dst_port=1723, application_name="PPTP", category_name="VPN")
GRE = flow(protocol=47, src_port=0, dst_port=0, application_name="GRE", category_name="Network")
TLS_443 = flow(application_name="TLS")
DTLS_443 = flow(protocol=17, src_port=50001, application_name="DTLS", dtls_vpn_hello=True)
#: A video server: HTTPS signalling and DTLS media on one address and port, no SSL VPN marks.
DTLS_443_MEDIA = replace(DTLS_443, dtls_vpn_hello=False)

CONTEXT_CASES = [
    ("gre-beside-pptp-control", (PPTP_CONTROL,), GRE, VpnProtocol.PPTP, "pptp-gre"),
    (
        "gre-reverse-direction-beside-pptp",
        (PPTP_CONTROL,),
        replace(GRE, src_ip=SERVER, dst_ip=CLIENT),
        VpnProtocol.PPTP,
        "pptp-gre",
    ),
    (
        "gre-other-hosts-than-pptp",
        (PPTP_CONTROL,),
        replace(GRE, dst_ip=OTHER),
        VpnProtocol.NONE,
        "generic-tunnel",
    ),
    (
        "gre-after-port-guessed-pptp",
        (replace(PPTP_CONTROL, confidence=PORT, guessed=True),),
        GRE,
        VpnProtocol.NONE,
        "generic-tunnel",
    ),
    ("dtls-beside-tls", (TLS_443,), DTLS_443, VpnProtocol.OTHER_VPN, "ssl-vpn-pair"),
    (
        "unmarked-dtls-beside-tls-unconfirmed",
        (TLS_443,),
        DTLS_443_MEDIA,
        VpnProtocol.NONE,
        "ssl-pair-unconfirmed",
    ),
    (
        "tls-beside-unmarked-dtls-unconfirmed",
        (DTLS_443_MEDIA,),
        replace(TLS_443, src_port=50002),
        VpnProtocol.NONE,
        "ssl-pair-unconfirmed",
    ),
    (
        "dtls-beside-tls-on-another-port",
        (replace(TLS_443, dst_port=8443),),
        replace(DTLS_443, dst_port=8443),
        VpnProtocol.OTHER_VPN,
        "ssl-vpn-pair",
    ),
    (
        "tls-beside-dtls",
        (DTLS_443,),
        replace(TLS_443, src_port=50002),
        VpnProtocol.OTHER_VPN,
        "ssl-vpn-pair",
    ),
    (
        "dtls-other-port-than-tls",
        (TLS_443,),
        replace(DTLS_443, dst_port=3478),
        VpnProtocol.NONE,
        "not-vpn",
    ),
    (
        "dtls-other-server-than-tls",
        (TLS_443,),
        replace(DTLS_443, dst_ip=OTHER),
        VpnProtocol.NONE,
        "not-vpn",
    ),
    (
        "dtls-beside-port-guessed-tls",
        (replace(TLS_443, confidence=PORT, guessed=True),),
        DTLS_443,
        VpnProtocol.NONE,
        "not-vpn",
    ),
    ("tls-beside-tls", (TLS_443,), replace(TLS_443, src_port=50003), VpnProtocol.NONE, "not-vpn"),
]


@pytest.mark.parametrize(
    ("earlier", "features", "expected", "rule"),
    [pytest.param(e, f, p, r, id=i) for i, e, f, p, r in CONTEXT_CASES],
)
def test_cross_flow_rules(
    earlier: tuple[FlowFeatures, ...], features: FlowFeatures, expected: VpnProtocol, rule: str
) -> None:
    verdict = classify(features, _observed(*earlier))
    assert (verdict.vpn_protocol, verdict.rule) == (expected, rule)


def test_context_rules_need_a_context() -> None:
    assert classify(GRE, None).rule == "generic-tunnel"
    assert classify(DTLS_443, None).rule == "not-vpn"


def test_context_is_bounded() -> None:
    ctx = FlowContext(capacity=2)
    for i in range(3):
        control = replace(PPTP_CONTROL, dst_ip=f"198.51.100.{i + 1}")
        ctx.observe(control, classify(control))
    assert not ctx.has_pptp_control(CLIENT, "198.51.100.1")
    assert ctx.has_pptp_control(CLIENT, "198.51.100.3")


def test_classify_stream_keeps_one_context() -> None:
    verdicts = [v for _f, v in classify_stream([PPTP_CONTROL, GRE])]
    assert [v.vpn_protocol for v in verdicts] == [VpnProtocol.PPTP, VpnProtocol.PPTP]


def test_classification_is_a_value() -> None:
    a = classify(PPTP_CONTROL)
    assert a == Classification(True, VpnProtocol.PPTP, a.basis, "ndpi-vpn-protocol")
    with pytest.raises(AttributeError):
        a.vpn = False  # type: ignore[misc]


def test_rules_ignore_addresses() -> None:
    # The same behaviour from other hosts gets the same verdict.
    for f in (flow(application_name="TLS.NordVPN", category_name="VPN"), GRE, DTLS_443):
        moved = replace(f, src_ip="2001:db8::1", dst_ip="2001:db8::2", ip_version=6)
        assert classify(moved) == classify(f)
