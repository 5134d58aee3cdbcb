"""NFStream source + plugin: payload facts, early hand-over and latency on synthetic captures."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.agent.pcapbuild import gre, pcap, tcp, udp
from vpnreg.agent.flows import FlowRecord, Handover, iter_flows
from vpnreg.core.classify import VpnProtocol, classify

C, S = "192.0.2.10", "198.51.100.20"
T0 = 1_700_000_000.0


def esp_in_udp() -> list[tuple[float, bytes]]:
    frames = []
    for i in range(4):
        body = struct.pack("!4sI", b"\x11\x22\x33\x44", i + 1) + bytes(range(48))
        frames.append((T0 + i * 0.01, udp(C, 40000, S, 4500, body)))
    return frames


def pptp_gre() -> list[tuple[float, bytes]]:
    inner = b"\xff\x03\x00\x21" + b"\x45" + bytes(39)
    header = struct.pack("!BBHHHI", 0x30, 0x81, 0x880B, len(inner), 38992, 1)
    return [(T0 + i * 0.01, gre(C, S, header + inner)) for i in range(3)]


def wireguard() -> list[tuple[float, bytes]]:
    # sender indices: the initiator's 11223344, the responder's 55667788 (the response names both)
    init = b"\x01\x00\x00\x00" + b"\x11\x22\x33\x44" + bytes(140)
    resp = b"\x02\x00\x00\x00" + b"\x55\x66\x77\x88" + b"\x11\x22\x33\x44" + bytes(80)
    receivers = (b"\x55\x66\x77\x88", b"\x11\x22\x33\x44")
    data = [
        b"\x04\x00\x00\x00" + receivers[i % 2] + bytes(8 + 32 + 16 * (i % 3)) for i in range(12)
    ]
    frames = [(T0, udp(C, 41000, S, 5555, init)), (T0 + 0.05, udp(S, 5555, C, 41000, resp))]
    for i, d in enumerate(data):
        src, sp, dst, dp = (C, 41000, S, 5555) if i % 2 == 0 else (S, 5555, C, 41000)
        frames.append((T0 + 0.1 + i * 0.01, udp(src, sp, dst, dp, d)))
    return frames


def records(tmp_path: Path, frames: list[tuple[float, bytes]], **kw: bool) -> list[FlowRecord]:
    path = tmp_path / "synthetic.pcap"
    path.write_bytes(pcap(frames))
    return list(iter_flows(path, **kw))


def test_esp_in_udp_on_4500_is_seen_from_its_sequence_numbers(tmp_path: Path) -> None:
    [rec] = records(tmp_path, esp_in_udp())
    assert rec.features.esp_in_udp
    assert rec.handover is Handover.DETECTION
    assert rec.packets_to_verdict == 2
    assert rec.ms_to_verdict == 10
    verdict = classify(rec.features)
    assert (verdict.vpn_protocol, verdict.rule) == (VpnProtocol.IPSEC, "esp-in-udp")


def test_same_esp_shape_on_another_port_is_not_esp(tmp_path: Path) -> None:
    frames = [(t, f.replace(b"\x11\x94", b"\x11\x95")) for t, f in esp_in_udp()]  # 4500 -> 4501
    recs = records(tmp_path, frames)
    assert recs
    assert not any(r.features.esp_in_udp for r in recs)


def test_ppp_in_gre_is_handed_over_on_the_first_packet(tmp_path: Path) -> None:
    [rec] = records(tmp_path, pptp_gre())
    assert rec.features.gre_ppp
    assert (rec.handover, rec.packets_to_verdict, rec.ms_to_verdict) == (Handover.DETECTION, 1, 0)
    assert classify(rec.features).vpn_protocol is VpnProtocol.PPTP


def test_gre_without_ppp_is_generic(tmp_path: Path) -> None:
    frames = [(t, f.replace(b"\x88\x0b", b"\x08\x00")) for t, f in pptp_gre()]
    [rec] = records(tmp_path, frames)
    assert not rec.features.gre_ppp
    assert classify(rec.features).rule == "generic-tunnel"


def test_wireguard_handshake_and_continuation(tmp_path: Path) -> None:
    [rec] = records(tmp_path, wireguard())
    assert rec.features.wireguard_handshake
    assert (rec.handover, rec.packets_to_verdict, rec.ms_to_verdict) == (
        Handover.DETECTION,
        2,
        50,
    )
    assert rec.features.src_ip == C
    assert classify(rec.features).vpn_protocol is VpnProtocol.WIREGUARD
    # The rest of the connection comes back as a continuation, dropped unless asked for.
    everything = records(tmp_path, wireguard(), include_continuations=True)
    assert [r.continuation for r in everything] == [False, True]
    assert everything[1].features.src2dst_packets + everything[1].features.dst2src_packets == 12


def openvpn_data(transport: str, *, counting: bool = True) -> list[tuple[float, bytes]]:
    """P_DATA_V2 packets (AEAD) of a tunnel already up: no handshake, packet ids in clear."""
    frames = []
    seq = {0: 1, 1: 1}
    for i in range(8):
        direction = i % 2
        packet_id = 5000 + 7 * direction + (i // 2 if counting else 13 * i)
        body = bytes([0x48]) + (b"\x00\x00\x01" if direction == 0 else b"\xff\xff\xff")
        body += (
            packet_id.to_bytes(4, "big") + bytes(16) + bytes((i * 37 + k) % 256 for k in range(60))
        )
        src, sp, dst, dp = (C, 43000, S, 1194) if direction == 0 else (S, 1194, C, 43000)
        if transport == "udp":
            frame = udp(src, sp, dst, dp, body)
        else:
            framed = len(body).to_bytes(2, "big") + body
            frame = tcp(src, sp, dst, dp, framed, seq=seq[direction])
            seq[direction] += len(framed)
        frames.append((T0 + i * 0.01, frame))
    return frames


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_openvpn_data_channel_mid_session_is_openvpn(tmp_path: Path, transport: str) -> None:
    [rec] = records(tmp_path, openvpn_data(transport))
    assert rec.features.openvpn_data
    assert not rec.features.openvpn_handshake
    assert rec.handover is Handover.DETECTION
    assert rec.packets_to_verdict == 4  # two packets each way show both counters
    verdict = classify(rec.features)
    assert (verdict.vpn_protocol, verdict.rule) == (VpnProtocol.OPENVPN, "openvpn-data")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_openvpn_data_shape_without_a_counter_is_not_openvpn(
    tmp_path: Path, transport: str
) -> None:
    [rec] = records(tmp_path, openvpn_data(transport, counting=False))
    assert not rec.features.openvpn_data
    assert not classify(rec.features).vpn


def test_flow_ending_before_detection_is_handed_over_at_expiry(tmp_path: Path) -> None:
    frames = [(T0, udp(C, 42000, S, 9999, b"\x00" * 20))]
    [rec] = records(tmp_path, frames)
    assert rec.handover is Handover.EXPIRY
    assert rec.packets_to_verdict == 1
    assert not classify(rec.features).vpn


@pytest.mark.parametrize(
    ("name", "max_packets"),
    [
        pytest.param("openvpn_nohmac.pcapng", 8, id="openvpn-udp"),
        pytest.param("openvpn_nohmac_tcp.pcapng", 8, id="openvpn-tcp"),
        pytest.param("forticlient.pcap", 16, id="long-tls"),
    ],
)
def test_long_corpus_flows_get_an_early_verdict(
    shared_dir: Path, name: str, max_packets: int
) -> None:
    recs = list(iter_flows(shared_dir / "corpus" / "ndpi" / name))
    assert recs
    for rec in recs:
        assert rec.handover is Handover.DETECTION
        assert rec.packets_to_verdict <= max_packets
        assert rec.ms_to_verdict >= 0
