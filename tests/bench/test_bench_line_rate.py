"""bench_line_rate's reading of tcpdump: each tunnel's first packet and its first packet
carrying payload (a TCP handshake carries none), and the times to its drop element."""

from __future__ import annotations

from pathlib import Path

from bench.bench_line_rate import Started, _first_packets, _times_to_block

from tests.lab.netlab import A_IP, B_IP, OVPN_PORT


def test_a_tcp_tunnel_is_timed_from_its_first_packet_and_from_its_first_payload(
    tmp_path: Path,
) -> None:
    log = tmp_path / "tcpdump.log"
    log.write_text(
        f"100.000000 IP {A_IP}.40000 > {B_IP}.{OVPN_PORT}: Flags [S], seq 1, win 64240, "
        "options [mss 1460], length 0\n"
        f"100.000100 IP {B_IP}.{OVPN_PORT} > {A_IP}.40000: Flags [S.], seq 2, ack 2, length 0\n"
        f"100.000200 IP {A_IP}.40000 > {B_IP}.{OVPN_PORT}: Flags [.], ack 1, length 0\n"
        f"100.950000 IP {A_IP}.40000 > {B_IP}.{OVPN_PORT}: Flags [P.], seq 1:57, ack 1, "
        "length 56\n"
    )
    packets = _first_packets(log)
    assert [n for _t, _p, n in packets] == [0, 0, 0, 56]
    assert {p for _t, p, _n in packets} == {40000}
    added = [(100.970, f"add element inet vpnreg blocked {{ 6 . {OVPN_PORT} . ... }}")]
    verdicts = [{"action": "block", "src_port": 40000, "dst_port": OVPN_PORT,
                 "ms_to_verdict": 950.0}]  # fmt: skip
    measured, blocks, from_payload = _times_to_block(
        [Started("openvpn-tcp", 99.99, 40000)], packets, added, verdicts
    )
    assert measured == 1
    ((kind, ms, after),) = blocks
    assert kind == "openvpn-tcp" and round(ms) == 970 and after is not None and round(after) == 20
    assert [(k, round(v)) for k, v in from_payload] == [("openvpn-tcp", 20)]
