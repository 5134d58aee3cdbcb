"""VPN flow classification: pure rules over flow features and nDPI's labels.

A flow is a VPN flow when its own behaviour says so: a self-identifying protocol header seen in
its first packets, the IP protocol number of ESP/AH, or an nDPI label that nDPI reached by
inspecting payload (not by guessing from a port). Nothing here looks at address, host-name or SNI
literals: addresses are only compared between flows (same two hosts) in `FlowContext`.

Order of the rules (first match wins); `Classification.rule` names the rule that decided:

1. payload evidence computed by the agent's plugin (PPP in GRE, IKE header, ESP-in-UDP,
   OpenVPN reset handshake, WireGuard handshake) and ESP/AH by IP protocol number;
2. GRE whose hosts hold a PPTP control connection (context);
3. generic encapsulations (GRE without PPP, IP-in-IP, 6in4, Teredo, VXLAN, GTP): never VPN;
4. labels nDPI only guessed (by port or address) are refused;
5. nDPI labels of VPN protocols reached by DPI;
6. a VPN vendor's service over a web protocol (TLS.<vendor>, HTTP.<vendor>): not VPN on its own,
   an app's API call looks exactly like a visit to the vendor's web site;
7. other VPN-category labels reached by DPI (SoftEther, tinc, ...): other-vpn;
8. SSL VPN: a TLS flow and a DTLS flow between the same client and server on the same port
   (context; AnyConnect/OpenConnect run CSTP over TLS with a DTLS data channel beside it) whose
   DTLS ClientHello carries an SSL VPN's marks.

Unconfirmed: where the agent's own rules can check a protocol's two-sided handshake (OpenVPN,
WireGuard, IKE over UDP), nDPI's label without that evidence, and a TLS+DTLS pair without an SSL
VPN's marks, are *unconfirmed*: `vpn` is false (never blocked) and `suspected` names the protocol,
so the gateway records the flow with the verdict `unconfirmed` (a reflection by a UDP echo service
of an OpenVPN client reset is labelled OpenVPN by nDPI; a video server with HTTPS signalling and
DTLS media on one address and port is a TLS+DTLS pair).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from vpnreg.core.protocols import VpnProtocol

IPPROTO_ICMP = 1
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_GRE = 47
IPPROTO_ESP = 50
IPPROTO_AH = 51


class Confidence(IntEnum):
    """nDPI's ndpi_confidence_t (nDPI 5.0, as exposed by NFStream's application_confidence)."""

    UNKNOWN = 0
    MATCH_BY_PORT = 1
    NBPF = 2
    DPI_PARTIAL = 3
    DPI_PARTIAL_CACHE = 4
    DPI_CACHE = 5
    DPI = 6
    MATCH_BY_IP = 7
    DPI_AGGRESSIVE = 8
    CUSTOM_RULE = 9


#: Confidences that come from looking at the payload (of this flow or a related, cached one).
INSPECTED = frozenset(
    {
        Confidence.DPI_PARTIAL,
        Confidence.DPI_PARTIAL_CACHE,
        Confidence.DPI_CACHE,
        Confidence.DPI,
    }
)

#: nDPI master protocols of VPN protocols, by the protocol they are.
_LABEL_PROTOCOL: dict[str, VpnProtocol] = {
    "OpenVPN": VpnProtocol.OPENVPN,
    "WireGuard": VpnProtocol.WIREGUARD,
    "IPSec": VpnProtocol.IPSEC,
    "ESP": VpnProtocol.IPSEC,
    "AH": VpnProtocol.IPSEC,
    "PPTP": VpnProtocol.PPTP,
    "L2TP": VpnProtocol.L2TP,
}

#: Generic encapsulations: they carry packets but neither authenticate nor encrypt them.
_GENERIC_TUNNEL_LABELS = frozenset({"GRE", "Teredo", "VXLAN", "GTP", "IP_in_IP", "IPv6_in_IP"})
_GENERIC_TUNNEL_PROTOCOLS = frozenset({IPPROTO_IPIP, IPPROTO_IPV6})

#: Master protocols over which a vendor label only says which service was reached.
_WEB_MASTERS = frozenset({"TLS", "HTTP", "QUIC", "DNS", "HTTP_Proxy", "HTTP_Connect"})

VPN_CATEGORY = "VPN"

_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass(frozen=True)
class FlowFeatures:
    """What the rules need to know about one flow (src is the side that sent the first packet).

    The payload facts are derived in the agent from the first packets; no payload byte is kept.
    """

    ip_version: int
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    protocol: int
    application_name: str = "Unknown"
    category_name: str = "Unspecified"
    confidence: int = Confidence.UNKNOWN
    guessed: bool = False
    src2dst_packets: int = 1
    dst2src_packets: int = 0
    src2dst_bytes: int = 0
    dst2src_bytes: int = 0
    duration_ms: int = 0
    #: GRE version 1 carrying PPP (protocol type 0x880b): the PPTP data channel.
    gre_ppp: bool = False
    #: A well-formed IKE header (UDP, possibly after the 4-byte non-ESP marker).
    ike_header: bool = False
    #: ESP in UDP: same non-zero SPI with sequence numbers counting up by one.
    esp_in_udp: bool = False
    #: OpenVPN hard reset from the client answered by the server's hard reset, with a session id
    #: of its own (never one the client sent: no reflection), acknowledging the client's session
    #: id (in clear without tls-crypt).
    openvpn_handshake: bool = False
    #: OpenVPN data channel (P_DATA_V2, AEAD ciphers) in both directions: per direction a
    #: constant opcode/key id and peer id with a clear packet id counting up by one. Seen on a
    #: tunnel that was up before the agent started, where no handshake passes.
    openvpn_data: bool = False
    #: WireGuard initiation (148 bytes) answered by a response (92 bytes) whose receiver index is
    #: the initiator's sender index, or transport messages of WireGuard's shape flowing in both
    #: directions with a receiver index per direction.
    wireguard_handshake: bool = False
    #: A WireGuard initiation answered by a response or cookie reply naming the initiator's sender
    #: index (sizes not checked: some vendors pad): confirms nDPI's WireGuard label.
    wireguard_answered: bool = False
    #: L2TPv2 control message header (T, L, S bits set, version 2).
    l2tp_control: bool = False
    #: A DTLS ClientHello with an SSL VPN's marks: version 0x0100 (Cisco's pre-standard DTLS), a
    #: resumed session id, or PSK cipher suites only; never use_srtp.
    dtls_vpn_hello: bool = False

    @property
    def master(self) -> str:
        return self.application_name.split(".", 1)[0]

    @property
    def app(self) -> str | None:
        parts = self.application_name.split(".", 1)
        return parts[1] if len(parts) == 2 else None


@dataclass(frozen=True)
class Classification:
    vpn: bool
    vpn_protocol: VpnProtocol
    basis: str
    rule: str
    #: For an unconfirmed flow (`vpn` false): the protocol the unconfirmed evidence names.
    suspected: VpnProtocol = VpnProtocol.NONE

    @property
    def unconfirmed(self) -> bool:
        return self.suspected is not VpnProtocol.NONE


#: nDPI labels the agent can check by the protocol's two-sided handshake (UDP and TCP).
_CHECKED_LABELS = frozenset({VpnProtocol.OPENVPN, VpnProtocol.WIREGUARD})


def _unconfirmed(protocol: VpnProtocol, basis: str, rule: str) -> Classification:
    return Classification(
        vpn=False, vpn_protocol=VpnProtocol.NONE, basis=basis, rule=rule, suspected=protocol
    )


def _vpn(protocol: VpnProtocol, basis: str, rule: str) -> Classification:
    return Classification(vpn=True, vpn_protocol=protocol, basis=basis, rule=rule)


def _not(basis: str, rule: str) -> Classification:
    return Classification(vpn=False, vpn_protocol=VpnProtocol.NONE, basis=basis, rule=rule)


class FlowContext:
    """Cross-flow memory the caller keeps and updates with `observe` after each verdict.

    Bounded (least recently seen entries are dropped past `capacity`), pure: no clock, no I/O.
    """

    def __init__(self, capacity: int = 65536) -> None:
        self.capacity = capacity
        self._pptp_hosts: OrderedDict[frozenset[str], None] = OrderedDict()
        # (client, server, server port) -> kinds seen: "tls" (TCP), "dtls" (UDP) and "marked"
        # (a DTLS flow whose ClientHello carried an SSL VPN's marks)
        self._ssl_pairs: OrderedDict[tuple[str, str, int], set[str]] = OrderedDict()

    def has_pptp_control(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self._pptp_hosts

    def ssl_partner(self, flow: FlowFeatures) -> bool:
        """Whether the other half of a TLS+DTLS pair was seen for this flow's endpoints."""
        kind = _ssl_kind(flow)
        if kind is None:
            return False
        other = "dtls" if kind == "tls" else "tls"
        return other in self._ssl_pairs.get((flow.src_ip, flow.dst_ip, flow.dst_port), set())

    def ssl_marked(self, flow: FlowFeatures) -> bool:
        """Whether this flow or its DTLS partner carried an SSL VPN's DTLS ClientHello."""
        if flow.protocol == IPPROTO_UDP:
            return flow.dtls_vpn_hello
        return "marked" in self._ssl_pairs.get((flow.src_ip, flow.dst_ip, flow.dst_port), set())

    def observe(self, flow: FlowFeatures, classification: Classification) -> None:
        if classification.vpn_protocol is VpnProtocol.PPTP and flow.protocol == IPPROTO_TCP:
            key = frozenset((flow.src_ip, flow.dst_ip))
            self._pptp_hosts[key] = None
            self._pptp_hosts.move_to_end(key)
            _trim(self._pptp_hosts, self.capacity)
        kind = _ssl_kind(flow)
        if kind is not None:
            pair = (flow.src_ip, flow.dst_ip, flow.dst_port)
            kinds = self._ssl_pairs.setdefault(pair, set())
            kinds.add(kind)
            if kind == "dtls" and flow.dtls_vpn_hello:
                kinds.add("marked")
            self._ssl_pairs.move_to_end(pair)
            _trim(self._ssl_pairs, self.capacity)


def _trim(d: OrderedDict[_K, _V], capacity: int) -> None:
    while len(d) > capacity:
        d.popitem(last=False)


def _ssl_kind(flow: FlowFeatures) -> str | None:
    if flow.confidence not in INSPECTED:
        return None
    if flow.protocol == IPPROTO_TCP and flow.master == "TLS":
        return "tls"
    if flow.protocol == IPPROTO_UDP and flow.master == "DTLS":
        return "dtls"
    return None


def classify(flow: FlowFeatures, context: FlowContext | None = None) -> Classification:
    """Decide whether one flow is a VPN flow and on what basis (see the module docstring)."""
    # 1. Payload evidence: self-identifying headers.
    if flow.protocol == IPPROTO_GRE and flow.gre_ppp:
        return _vpn(VpnProtocol.PPTP, "GRE version 1 carrying PPP (0x880b)", "gre-ppp")
    if flow.protocol in (IPPROTO_ESP, IPPROTO_AH):
        name = "ESP" if flow.protocol == IPPROTO_ESP else "AH"
        return _vpn(VpnProtocol.IPSEC, f"IP protocol {flow.protocol} ({name})", "ip-esp-ah")
    if flow.protocol == IPPROTO_UDP and flow.ike_header:
        return _vpn(VpnProtocol.IPSEC, "IKE header in UDP payload", "ike-header")
    if flow.protocol == IPPROTO_UDP and flow.esp_in_udp:
        return _vpn(
            VpnProtocol.IPSEC, "ESP in UDP: constant SPI, sequence counting up", "esp-in-udp"
        )
    if flow.openvpn_handshake:
        return _vpn(
            VpnProtocol.OPENVPN, "OpenVPN hard-reset opcodes, client and server", "openvpn-reset"
        )
    if flow.openvpn_data:
        return _vpn(
            VpnProtocol.OPENVPN,
            "OpenVPN data channel: peer id constant, packet id counting up, both directions",
            "openvpn-data",
        )
    if flow.protocol == IPPROTO_UDP and flow.wireguard_handshake:
        return _vpn(VpnProtocol.WIREGUARD, "WireGuard message types and sizes", "wireguard-msg")
    if flow.protocol == IPPROTO_UDP and flow.l2tp_control:
        return _vpn(VpnProtocol.L2TP, "L2TPv2 control header", "l2tp-control")

    # 2. PPTP's GRE data channel, known by its control connection.
    if (
        flow.protocol == IPPROTO_GRE
        and context is not None
        and context.has_pptp_control(flow.src_ip, flow.dst_ip)
    ):
        return _vpn(VpnProtocol.PPTP, "GRE beside a PPTP control connection", "pptp-gre")

    # 3. Generic encapsulations.
    if (
        flow.protocol in (IPPROTO_GRE, *_GENERIC_TUNNEL_PROTOCOLS)
        or flow.master in _GENERIC_TUNNEL_LABELS
    ):
        return _not("generic tunnel (no authentication or encryption)", "generic-tunnel")

    # 4. Labels nDPI did not reach by inspection.
    if flow.master == "Unknown":
        return _not("no protocol identified", "unknown")
    if flow.confidence not in INSPECTED:
        what = "VPN label" if flow.category_name == VPN_CATEGORY else "label"
        return _not(
            f"{what} {flow.application_name} only guessed by nDPI "
            f"({Confidence(flow.confidence).name.lower()})",
            "guess-refused",
        )

    # 5. VPN protocols named by DPI; where the agent checks the protocol's handshake itself
    # (rule group 1 failed to), the label alone is unconfirmed.
    mapped = _LABEL_PROTOCOL.get(flow.master)
    if mapped is not None:
        if mapped is VpnProtocol.WIREGUARD and flow.wireguard_answered:
            return _vpn(
                mapped,
                f"nDPI DPI label {flow.application_name}, initiation answered with its index",
                "ndpi-vpn-protocol",
            )
        if mapped in _CHECKED_LABELS or (
            mapped is VpnProtocol.IPSEC and flow.protocol == IPPROTO_UDP
        ):
            return _unconfirmed(
                mapped,
                f"nDPI DPI label {flow.application_name} without the {mapped.value} handshake "
                "from both sides (a reflection or a one-sided flow): not blocked",
                "ndpi-unconfirmed",
            )
        return _vpn(mapped, f"nDPI DPI label {flow.application_name}", "ndpi-vpn-protocol")

    # 6./7. VPN-category labels: vendor service over the web, or another VPN protocol.
    if flow.category_name == VPN_CATEGORY:
        if flow.master in _WEB_MASTERS and flow.app is not None:
            return _not(
                f"VPN vendor service over {flow.master} (app API or web site look alike)",
                "vendor-web",
            )
        return _vpn(
            VpnProtocol.OTHER_VPN, f"nDPI DPI label {flow.application_name}", "ndpi-vpn-other"
        )

    # 8. SSL VPN: TLS control channel with a DTLS data channel beside it.
    if context is not None and context.ssl_partner(flow):
        if flow.protocol == IPPROTO_UDP:
            basis = "DTLS beside a TLS flow between the same hosts and port"
        else:
            basis = "TLS beside a DTLS flow between the same hosts and port"
        if context.ssl_marked(flow):
            return _vpn(VpnProtocol.OTHER_VPN, f"{basis}, SSL VPN DTLS ClientHello", "ssl-vpn-pair")
        return _unconfirmed(
            VpnProtocol.OTHER_VPN,
            f"{basis}, no SSL VPN mark in the DTLS ClientHello (a video server looks alike): "
            "not blocked",
            "ssl-pair-unconfirmed",
        )

    return _not(f"{flow.application_name}: not a VPN protocol", "not-vpn")


def classify_stream(
    flows: Iterable[FlowFeatures], context: FlowContext | None = None
) -> Iterator[tuple[FlowFeatures, Classification]]:
    """Classify flows in arrival order, keeping one context across them."""
    ctx = FlowContext() if context is None else context
    for flow in flows:
        verdict = classify(flow, ctx)
        ctx.observe(flow, verdict)
        yield flow, verdict
