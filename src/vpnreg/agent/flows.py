"""Flow source: NFStream (nDPI inside) over a pcap file or a live interface -> flow feature records.

NFStream's C engine does the per-packet work; the plugin below runs in NFStream's forked meter
processes on a flow's first packets only. It derives a few booleans from the payload (no payload
byte leaves it) and hands a flow over as soon as nDPI has finished detection or the payload alone
is conclusive (`expiration_id = -1`), so the verdict comes packets after the flow starts, not when
it times out. The plugin sees only what it had at fork time: the allowlist and the policy live in
the process that consumes these records.

After an early hand-over the rest of the connection reaches the meter as a new flow; the plugin
remembers handed-over keys and marks those flows `continuation`, which `iter_flows` drops unless
asked for them.
"""

from __future__ import annotations

import os.path
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from nfstream import NFPlugin, NFStreamer

from vpnreg.agent import leanflow
from vpnreg.agent.children import die_with_parent
from vpnreg.agent.livecapture import install_immediate_mode
from vpnreg.core.classify import FlowFeatures

IDLE_TIMEOUT_S = 120
ACTIVE_TIMEOUT_S = 1800
#: Packets of a flow the plugin inspects at most (nDPI itself gives up after `n_dissections`).
INSPECT_PACKETS = 16

_IKE_V1_EXCHANGES = frozenset({1, 2, 4, 5, 6, 32})
_IKE_V2_EXCHANGES = frozenset({34, 35, 36, 37})
_IKE_V2_RESPONSE = 0x20
_OPENVPN_CLIENT_RESET = frozenset({1, 7, 10})
_OPENVPN_SERVER_RESET = frozenset({2, 8})
_OPENVPN_DATA_V2 = 9
_WIREGUARD_SIZES = {1: 148, 2: 92, 3: 64}
_ESP_IN_UDP_PORT = 4500
#: DTLS1_BAD_VER: the pre-RFC DTLS that Cisco AnyConnect (and OpenConnect's legacy mode) speak.
_DTLS_CISCO_VERSION = b"\x01\x00"
_DTLS_VERSIONS = frozenset({b"\x01\x00", b"\xfe\xff", b"\xfe\xfd"})
_TLS_EXT_USE_SRTP = 0x000E
_TLS_SIGNALLING_SUITES = frozenset({0x00FF, 0x5600})


def _is_psk_suite(suite: int) -> bool:
    """TLS cipher suites keyed by a pre-shared key (RFC 4279, 5487, 5489, 6655, 7905, 8442)."""
    return (
        0x008C <= suite <= 0x0095
        or 0x00A8 <= suite <= 0x00B9
        or 0xC034 <= suite <= 0xC03B
        or suite in (0xC0A4, 0xC0A5, 0xC0A8, 0xC0A9)
        or 0xCCAB <= suite <= 0xCCAE
        or 0xD001 <= suite <= 0xD005
    )


def _dtls_ssl_vpn_hello(p: bytes) -> bool:
    """A DTLS ClientHello with an SSL VPN's marks (see docs/classification.md): Cisco's
    pre-standard version 0x0100, a session resumed on a new flow (the master secret came over
    the TLS channel: AnyConnect's X-DTLS-Session-ID), or PSK cipher suites only (OpenConnect's
    PSK-NEGOTIATE, keyed from the TLS channel); never with use_srtp (WebRTC's DTLS-SRTP)."""
    if len(p) < 61 or p[0] != 0x16 or p[1:3] not in _DTLS_VERSIONS or p[13] != 1:
        return False
    body = p[25:]
    version, at = body[:2], 34
    sid_len = body[at]
    at += 1 + sid_len
    if len(body) < at + 1:
        return False
    at += 1 + body[at]  # cookie
    if len(body) < at + 2:
        return False
    n = int.from_bytes(body[at : at + 2], "big")
    suites = [int.from_bytes(body[i : i + 2], "big") for i in range(at + 2, at + 2 + n, 2)]
    at += 2 + n
    if len(body) < at + 1:
        return False
    at += 1 + body[at]  # compression methods
    ext_end = at + 2 + int.from_bytes(body[at : at + 2], "big") if len(body) >= at + 2 else at
    at += 2
    while at + 4 <= min(ext_end, len(body)):
        ext, size = (
            int.from_bytes(body[at : at + 2], "big"),
            int.from_bytes(body[at + 2 : at + 4], "big"),
        )
        if ext == _TLS_EXT_USE_SRTP:
            return False
        at += 4 + size
    real = [s for s in suites if s not in _TLS_SIGNALLING_SUITES]
    return (
        _DTLS_CISCO_VERSION in (p[1:3], version)
        or sid_len > 0
        or (bool(real) and all(_is_psk_suite(s) for s in real))
    )


class Handover(StrEnum):
    DETECTION = "detection"  # nDPI finished detection (or the payload was conclusive)
    EXPIRY = "expiry"  # the flow ended (idle, active timeout or end of capture) before that


@dataclass(frozen=True)
class FlowRecord:
    """One flow as handed over by the meter, with how long its verdict took."""

    features: FlowFeatures
    handover: Handover
    packets_to_verdict: int
    ms_to_verdict: int
    first_seen_ms: int
    continuation: bool = False


def _transport_payload(ip: bytes) -> tuple[int, bytes]:
    """(IP protocol, payload above TCP/UDP or above IP for other protocols)."""
    if not ip:
        return -1, b""
    version = ip[0] >> 4
    if version == 4:
        ihl = (ip[0] & 0x0F) * 4
        proto, rest = ip[9], ip[ihl:]
    elif version == 6 and len(ip) >= 40:
        proto, rest = ip[6], ip[40:]
        while proto in (0, 43, 60) and len(rest) >= 8:  # hop-by-hop, routing, destination opts
            proto, rest = rest[0], rest[(rest[1] + 1) * 8 :]
    else:
        return -1, b""
    if proto == 6 and len(rest) >= 20:
        return proto, rest[(rest[12] >> 4) * 4 :]
    if proto == 17 and len(rest) >= 8:
        return proto, rest[8:]
    return proto, rest


def _ike_header(p: bytes) -> tuple[bytes, bytes] | None:
    """(initiator SPI, responder SPI + flags + message id) of a well-formed IKE header, or None."""
    if len(p) >= 4 and p[:4] == b"\x00\x00\x00\x00":
        p = p[4:]  # non-ESP marker on port 4500
    if len(p) < 28 or p[:8] == bytes(8):
        return None
    version, exchange = p[17], p[18]
    if version == 0x10:
        ok = exchange in _IKE_V1_EXCHANGES
    elif version == 0x20:
        ok = exchange in _IKE_V2_EXCHANGES
    else:
        return None
    if not ok or int.from_bytes(p[24:28], "big") != len(p):
        return None
    return p[:8], p[8:16] + p[19:24]


def _wireguard_type(p: bytes) -> int:
    if len(p) < 32 or p[1:4] != b"\x00\x00\x00" or not 1 <= p[0] <= 4:
        return 0
    if p[0] == 4:
        return 4 if len(p) % 16 == 0 else 0
    return p[0] if len(p) == _WIREGUARD_SIZES[p[0]] else 0


def _openvpn_data_id(protocol: int, p: bytes) -> tuple[bytes, int] | None:
    """(opcode/key id byte + peer id, packet id) of an OpenVPN P_DATA_V2 packet with an AEAD
    cipher, whose packet id travels in clear; None if the payload does not look like one."""
    if protocol == 6:
        if len(p) < 2 or int.from_bytes(p[:2], "big") != len(p) - 2:
            return None
        p = p[2:]
    # opcode 9 (P_DATA_V2), 3-byte peer id, 4-byte packet id, 16-byte tag, some ciphertext
    if len(p) < 28 or p[0] >> 3 != _OPENVPN_DATA_V2:
        return None
    return p[:4], int.from_bytes(p[4:8], "big")


def _openvpn_control(protocol: int, p: bytes, first: bool) -> bytes:
    """An OpenVPN control packet with key id 0 (TCP: its length prefix removed), or b"" if the
    payload does not look like one."""
    if protocol == 6:
        if not first or len(p) < 16 or int.from_bytes(p[:2], "big") != len(p) - 2:
            return b""
        p = p[2:]
    if len(p) < 14 or p[0] & 0x07 != 0:  # key id 0 during the initial handshake
        return b""
    return p


#: Where a server hard reset's ack array starts: after opcode and session id (9 bytes), plus,
#: with --tls-auth, the HMAC (MD5, SHA-1, SHA-256, SHA-384, SHA-512) and packet id and time (8).
_OPENVPN_ACK_OFFSETS = (9, *(9 + h + 8 for h in (16, 20, 32, 48, 64)))
#: tls-crypt (v1/v2): opcode, session id, packet id and time, 32-byte tag, then encrypted (the
#: ack array too): its server reset is at least this long.
_OPENVPN_TLS_CRYPT_SERVER_RESET = 9 + 8 + 32 + 17


def _openvpn_acks(reset: bytes, client_sid: bytes) -> bool:
    """Whether a server hard reset's ack array (in clear) names the client's session id."""
    for offset in _OPENVPN_ACK_OFFSETS:
        if len(reset) <= offset:
            break
        n = reset[offset]
        sid_at = offset + 1 + 4 * n
        if 1 <= n <= 8 and reset[sid_at : sid_at + 8] == client_sid:
            return True
    return False


class VpnFeaturePlugin(NFPlugin):  # type: ignore[misc]
    """Payload facts and early hand-over. Self-contained: it runs in forked meter processes."""

    def __init__(self, idle_timeout_ms: int = IDLE_TIMEOUT_S * 1000) -> None:
        super().__init__()
        self.idle_timeout_ms = idle_timeout_ms
        # direction-agnostic flow key -> time (ms) of its hand-over, or of the last packet of a
        # continuation cut by the active timeout
        self.handed: OrderedDict[tuple[Any, ...], int] = OrderedDict()

    @staticmethod
    def _key(flow: Any) -> tuple[Any, ...]:
        ends = sorted([(flow.src_ip, flow.src_port), (flow.dst_ip, flow.dst_port)])
        return (flow.protocol, flow.vlan_id, getattr(flow, "tunnel_id", 0), *ends)

    def on_init(self, packet: Any, flow: Any) -> None:
        u = flow.udps
        key = self._key(flow)
        while self.handed:  # forget keys idle for longer than the idle timeout
            old_key, seen = next(iter(self.handed.items()))
            if packet.time - seen <= self.idle_timeout_ms:
                break
            del self.handed[old_key]
        u.continuation = key in self.handed
        if u.continuation:
            self.handed[key] = packet.time
            self.handed.move_to_end(key)
        u.handover = ""
        u.packets_to_verdict = 0
        u.ms_to_verdict = 0
        u.gre_ppp = False
        u.ike_header = False
        u.esp_in_udp = False
        u.l2tp_control = False
        u.ovpn_client_reset = False
        u.ovpn_server_reset = False
        u.ovpn_client_sid = b""
        u.ovpn_sent_sids = set()
        u.wg_init = -1
        u.wg_init_sender = b""
        u.wg_init_exact = False
        u.wg_sent = set()
        u.wg_resp = -1
        u.wg_answered = False
        u.wg_data_dirs = 0
        u.wg_data_receivers = [None, None]
        u.ike_spi = b""
        u.ike_sent = set()
        u.dtls_vpn_hello = False
        u.esp_last = [None, None]
        u.ovpn_data_last = [None, None]
        u.ovpn_data_dirs = 0
        u.payload_packets = [0, 0]
        u.inspected = 0
        if not u.continuation:
            self._inspect(packet, flow)
            self._maybe_hand_over(packet, flow)

    def on_update(self, packet: Any, flow: Any) -> None:
        u = flow.udps
        if u.continuation:
            # Most packets of a long connection land here. Its key needs no refresh while the
            # continuation is in the meter's cache (no new flow of that key can start then);
            # on_expire puts it back if an active timeout cuts the continuation.
            return
        if u.inspected < INSPECT_PACKETS:
            self._inspect(packet, flow)
        self._maybe_hand_over(packet, flow)

    def lean_update(self, flow: Any, time_ms: int, detection_completed: int) -> bool:
        """`vpnreg.agent.leanflow`'s per-packet call (no Python packet made, flow fields not
        copied but the packet count): True when the packet's bytes are wanted (`on_update`
        follows); otherwise the hand-over test runs here."""
        if flow.udps.inspected < INSPECT_PACKETS:
            return True
        self._hand_over_if_done(flow, time_ms, detected=detection_completed >= 1)
        return False

    def on_expire(self, flow: Any) -> None:
        u = flow.udps
        # Only plain values cross back to the consuming process.
        u.wireguard_handshake = not u.continuation and _wg_handshake(u)
        u.openvpn_data = not u.continuation and u.ovpn_data_dirs == 3
        u.wireguard_answered = not u.continuation and bool(u.wg_answered)
        for name in (
            "esp_last",
            "ovpn_data_last",
            "ovpn_data_dirs",
            "ovpn_client_sid",
            "ovpn_sent_sids",
            "payload_packets",
            "wg_init",
            "wg_init_sender",
            "wg_init_exact",
            "wg_sent",
            "wg_resp",
            "wg_answered",
            "wg_data_dirs",
            "wg_data_receivers",
            "ike_spi",
            "ike_sent",
        ):
            delattr(u, name)
        if u.continuation:
            key = self._key(flow)
            if flow.expiration_id == 1:  # active timeout: the connection goes on
                self.handed[key] = flow.bidirectional_last_seen_ms
            else:
                self.handed.pop(key, None)
            return
        if not u.handover:
            u.handover = Handover.EXPIRY.value
            u.packets_to_verdict = flow.bidirectional_packets
            u.ms_to_verdict = flow.bidirectional_duration_ms

    def _conclusive(self, flow: Any) -> bool:
        u = flow.udps
        return bool(
            flow.protocol in (50, 51)
            or u.gre_ppp
            or u.ike_header
            or u.esp_in_udp
            or u.l2tp_control
            or (u.ovpn_client_reset and u.ovpn_server_reset)
            or u.ovpn_data_dirs == 3
            or _wg_handshake(u)
        )

    def _maybe_hand_over(self, packet: Any, flow: Any) -> None:
        c = getattr(flow, "_C", None)
        self._hand_over_if_done(
            flow, packet.time, detected=c is not None and c.detection_completed >= 1
        )

    def _hand_over_if_done(self, flow: Any, time_ms: int, *, detected: bool) -> None:
        u = flow.udps
        if u.handover:
            return
        if detected or self._conclusive(flow):
            u.handover = Handover.DETECTION.value
            u.packets_to_verdict = flow.bidirectional_packets
            u.ms_to_verdict = time_ms - flow.bidirectional_first_seen_ms
            key = self._key(flow)
            self.handed[key] = time_ms
            self.handed.move_to_end(key)
            flow.expiration_id = -1

    def _inspect(self, packet: Any, flow: Any) -> None:
        u = flow.udps
        u.inspected += 1
        proto, p = _transport_payload(packet.ip_packet)
        direction = packet.direction
        if proto == 47:
            u.gre_ppp = u.gre_ppp or (len(p) >= 4 and p[1] & 0x07 == 1 and p[2:4] == b"\x88\x0b")
            return
        if proto not in (6, 17) or not p:
            return
        first = u.payload_packets[direction] == 0
        u.payload_packets[direction] += 1
        self._openvpn_reset(u, direction, _openvpn_control(proto, p, first))
        data = _openvpn_data_id(proto, p)
        if data is not None:
            last = u.ovpn_data_last[direction]
            if last is not None and last[0] == data[0] and data[1] == last[1] + 1:
                u.ovpn_data_dirs |= 1 << direction
            u.ovpn_data_last[direction] = data
        if proto != 17:
            return
        self._ike(u, direction, _ike_header(p))
        if direction == 0 and not u.dtls_vpn_hello:
            u.dtls_vpn_hello = _dtls_ssl_vpn_hello(p)
        self._wireguard(u, direction, p)
        if (
            len(p) >= 4
            and p[0] & 0xCB == 0xC8
            and p[1] & 0x0F == 2
            and len(p) >= 12
            and int.from_bytes(p[2:4], "big") == len(p)
        ):
            u.l2tp_control = True
        on_4500 = _ESP_IN_UDP_PORT in (flow.src_port, flow.dst_port)
        if on_4500 and len(p) >= 16 and p[:4] != b"\x00\x00\x00\x00":
            spi, seq = p[:4], int.from_bytes(p[4:8], "big")
            last = u.esp_last[direction]
            if last is not None and last[0] == spi and seq == last[1] + 1:
                u.esp_in_udp = True
            u.esp_last[direction] = (spi, seq)

    @staticmethod
    def _openvpn_reset(u: Any, direction: int, control: bytes) -> None:
        """A client hard reset (initiator) answered by the responder's server hard reset with a
        session id of its own that acknowledges the client's (a reflection never does: its
        session ids are all the initiator's). tls-crypt encrypts the ack array: there the fresh
        session id of a server reset long enough for tls-crypt is the evidence."""
        if not control:
            return
        opcode, sid = control[0] >> 3, control[1:9]
        if direction == 0:
            u.ovpn_sent_sids.add(sid)
            if opcode in _OPENVPN_CLIENT_RESET and not u.ovpn_client_reset:
                u.ovpn_client_reset = True
                u.ovpn_client_sid = sid
            return
        client_sid = u.ovpn_client_sid
        if (
            opcode in _OPENVPN_SERVER_RESET
            and u.ovpn_client_reset
            and client_sid != _ZERO_SID  # OpenVPN never uses an undefined (zero) session id
            and sid != _ZERO_SID
            and sid not in u.ovpn_sent_sids
            and (
                _openvpn_acks(control, client_sid)
                or (opcode == 8 and len(control) >= _OPENVPN_TLS_CRYPT_SERVER_RESET)
            )
        ):
            u.ovpn_server_reset = True

    @staticmethod
    def _ike(u: Any, direction: int, header: tuple[bytes, bytes] | None) -> None:
        """An IKE header from the initiator answered by the responder with the same initiator
        SPI, a responder SPI set or IKEv2's response flag (a COOKIE or INVALID_KE answer to
        IKE_SA_INIT has no responder SPI yet), and a responder SPI, flags and message id the
        initiator did not send itself (a reflection sends nothing else)."""
        if header is None:
            return
        spi, rest = header
        if direction == 0:
            if not u.ike_spi:
                u.ike_spi = spi
            u.ike_sent.add(spi + rest)
        elif (
            spi == u.ike_spi
            and (rest[:8] != _ZERO_SID or rest[8] & _IKE_V2_RESPONSE)
            and spi + rest not in u.ike_sent
        ):
            u.ike_header = True

    @staticmethod
    def _wireguard(u: Any, direction: int, p: bytes) -> None:
        """Handshake messages: an initiation answered by a response or cookie reply naming the
        initiator's sender index, never a copy of a message the initiator sent (a reflection
        is nothing but copies). Transport messages: a receiver index per direction."""
        wg = _wireguard_type(p)
        if wg == 4:
            u.wg_data_dirs |= 1 << direction
            u.wg_data_receivers[direction] = p[4:8]
            return
        if len(p) < 32 or p[1:4] != b"\x00\x00\x00" or p[0] not in (1, 2, 3):
            return
        if u.wg_init < 0 and p[0] == 1 and len(p) >= _WIREGUARD_SIZES[1]:
            u.wg_init, u.wg_init_sender, u.wg_init_exact = direction, p[4:8], wg == 1
        if u.wg_init < 0:
            return
        if direction == u.wg_init:
            u.wg_sent.add(p[:32])
            u.wg_sent.add(p[4:8])
        elif p[:32] not in u.wg_sent and _wireguard_answers(p, u.wg_init_sender, u.wg_sent):
            u.wg_answered = True
            if wg == 2 and u.wg_init_exact:
                u.wg_resp = direction


_ZERO_SID = bytes(8)


def _wireguard_answers(p: bytes, init_sender: bytes, sent: set[bytes]) -> bool:
    """A response (type 2: a sender index the initiator did not send, receiver = the
    initiator's sender index) or a cookie reply (type 3: receiver = that index)."""
    if p[0] == 2:
        return len(p) >= _WIREGUARD_SIZES[2] and p[8:12] == init_sender and p[4:8] not in sent
    return p[0] == 3 and len(p) == _WIREGUARD_SIZES[3] and p[4:8] == init_sender


def _wg_handshake(u: Any) -> bool:
    """Initiation (148 bytes) answered by a response (92 bytes) naming its sender index, or
    transport messages both ways with a receiver index per direction (a reflection has one)."""
    receivers = u.wg_data_receivers
    return bool(
        (u.wg_init >= 0 and u.wg_resp >= 0 and u.wg_init != u.wg_resp)
        or (u.wg_data_dirs == 3 and receivers[0] != receivers[1])
    )


def _record(flow: Any) -> FlowRecord:
    u = flow.udps
    features = FlowFeatures(
        ip_version=flow.ip_version,
        src_ip=flow.src_ip,
        src_port=flow.src_port,
        dst_ip=flow.dst_ip,
        dst_port=flow.dst_port,
        protocol=flow.protocol,
        application_name=flow.application_name or "Unknown",
        category_name=flow.application_category_name or "Unspecified",
        confidence=int(flow.application_confidence or 0),
        guessed=bool(flow.application_is_guessed),
        src2dst_packets=flow.src2dst_packets,
        dst2src_packets=flow.dst2src_packets,
        src2dst_bytes=flow.src2dst_bytes,
        dst2src_bytes=flow.dst2src_bytes,
        duration_ms=flow.bidirectional_duration_ms,
        gre_ppp=u.gre_ppp,
        ike_header=u.ike_header,
        esp_in_udp=u.esp_in_udp,
        openvpn_handshake=u.ovpn_client_reset and u.ovpn_server_reset,
        openvpn_data=u.openvpn_data,
        wireguard_handshake=u.wireguard_handshake,
        wireguard_answered=u.wireguard_answered,
        l2tp_control=u.l2tp_control,
        dtls_vpn_hello=u.dtls_vpn_hello,
    )
    return FlowRecord(
        features=features,
        handover=Handover(u.handover) if u.handover else Handover.EXPIRY,
        packets_to_verdict=u.packets_to_verdict,
        ms_to_verdict=u.ms_to_verdict,
        first_seen_ms=flow.bidirectional_first_seen_ms,
        continuation=u.continuation,
    )


def iter_flows(
    source: str | Path,
    *,
    n_meters: int = 1,
    bpf_filter: str | None = None,
    idle_timeout_s: int = IDLE_TIMEOUT_S,
    active_timeout_s: int = ACTIVE_TIMEOUT_S,
    include_continuations: bool = False,
    lean: bool = True,
) -> Iterator[FlowRecord]:
    """Flow records from a capture file or a live interface name, in hand-over order.

    One meter (the default) keeps the order deterministic for files; a live source may use more
    (0 lets NFStream pick one per core). A live source gets its packets without libpcap's
    batching (see vpnreg.agent.livecapture); a file is read as NFStream reads it. `lean` (the
    default) runs the meters with `vpnreg.agent.leanflow` (the same records with fewer copies);
    False gives NFStream's plain plugin mode.
    """
    if lean:
        leanflow.install()
    else:
        leanflow.uninstall()
    die_with_parent()  # the meters NFStream forks must not outlive a killed agent
    if not os.path.isfile(source):  # NFStream's own test: anything else is an interface name
        install_immediate_mode()
    streamer = NFStreamer(
        source=str(source),
        bpf_filter=bpf_filter,
        n_meters=n_meters,
        idle_timeout=idle_timeout_s,
        active_timeout=active_timeout_s,
        statistical_analysis=False,
        udps=[VpnFeaturePlugin(idle_timeout_ms=idle_timeout_s * 1000)],
    )
    for flow in streamer:
        record = _record(flow)
        if record.continuation and not include_continuations:
            continue
        yield record
