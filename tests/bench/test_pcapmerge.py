"""bench.pcapmerge: link-type conversion, pcap/pcapng reading, and the repeated layout in time."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from bench.pcapmerge import (
    FAKE_MACS,
    Capture,
    Frame,
    read_capture,
    to_ethernet,
    write_repeated,
)
from nfstream import NFStreamer

from vpnreg.agent.pcapfile import check_capture

V4 = bytes([0x45]) + bytes(19)  # just enough of an IPv4 header for the version nibble
V6 = bytes([0x60]) + bytes(39)
ETH = bytes(12) + b"\x08\x00" + V4


def ip_udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv4/UDP packet (checksums left zero: the flow meter does not check them)."""
    total = 20 + 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, 17, 0,
                     bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))  # fmt: skip
    return ip + struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def pcap_bytes(linktype: int, records: list[tuple[int, int, bytes]], *, nano: bool = False,
               big_endian: bool = False) -> bytes:  # fmt: skip
    o = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(f"{o}IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)]
    for sec, frac, data in records:
        out.append(struct.pack(f"{o}IIII", sec, frac, len(data), len(data)) + data)
    return b"".join(out)


def block(kind: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    total = len(body) + 12
    return struct.pack("<II", kind, total) + body + struct.pack("<I", total)


def shb() -> bytes:
    return block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(linktype: int, tsresol: int | None = None) -> bytes:
    options = b""
    if tsresol is not None:
        options = struct.pack("<HH", 9, 1) + bytes([tsresol, 0, 0, 0]) + struct.pack("<HH", 0, 0)
    return block(1, struct.pack("<HHI", linktype, 0, 65535) + options)


def epb(iface: int, ticks: int, data: bytes) -> bytes:
    head = struct.pack("<IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data))
    return block(6, head + data)


@pytest.mark.parametrize(
    ("linktype", "data", "expected"),
    [
        (1, ETH, (ETH, 0)),
        (0, struct.pack("<I", 2) + V4, (FAKE_MACS + b"\x08\x00" + V4, 10)),
        (108, struct.pack(">I", 24) + V6, (FAKE_MACS + b"\x86\xdd" + V6, 10)),
        (101, V6, (FAKE_MACS + b"\x86\xdd" + V6, 14)),
        (228, V4, (FAKE_MACS + b"\x08\x00" + V4, 14)),
        (113, bytes(14) + b"\x08\x00" + V4, (FAKE_MACS + b"\x08\x00" + V4, -2)),
        (276, b"\x86\xdd" + bytes(18) + V6, (FAKE_MACS + b"\x86\xdd" + V6, -6)),
        (113, bytes(14) + b"\x08\x06" + bytes(28), None),
        (101, bytes(20), None),
        (127, bytes(40), None),
    ],
    ids=[
        "ethernet",
        "null-v4",
        "loop-v6",
        "raw-v6",
        "ipv4-link",
        "sll-v4",
        "sll2-v6",
        "sll-arp",
        "raw-not-ip",
        "radiotap",
    ],
)
def test_to_ethernet(linktype: int, data: bytes, expected: tuple[bytes, int] | None) -> None:
    assert to_ethernet(linktype, data) == expected


@pytest.mark.parametrize(("nano", "big_endian"), [(False, False), (True, True)],
                         ids=["usec-le", "nsec-be"])  # fmt: skip
def test_read_pcap(tmp_path: Path, nano: bool, big_endian: bool) -> None:
    path = tmp_path / "x.pcap"
    frac = 250_000_000 if nano else 250_000
    path.write_bytes(pcap_bytes(0, [(100, frac, struct.pack("<I", 2) + V4),
                                    (101, 0, struct.pack("<I", 2) + bytes(20))],
                                nano=nano, big_endian=big_endian))  # fmt: skip
    cap = read_capture(path)
    assert cap.frames == (Frame(100_250_000, FAKE_MACS + b"\x08\x00" + V4, 34),)
    assert cap.dropped == 1


def test_read_pcapng_resolution_interfaces_and_sections(tmp_path: Path) -> None:
    path = tmp_path / "x.pcapng"
    path.write_bytes(
        shb() + idb(101, tsresol=9) + idb(127) + epb(0, 5_000_000_123, V4) + epb(1, 7, bytes(40))
        # a new section forgets the interfaces of the last one: interface 0 is Ethernet now
        + shb() + idb(1) + epb(0, 6_000_001, ETH)
    )  # fmt: skip
    cap = read_capture(path)
    assert [(f.ts_us, f.data) for f in cap.frames] == [
        (5_000_000, FAKE_MACS + b"\x08\x00" + V4),
        (6_000_001, ETH),
    ]
    assert cap.dropped == 1


def frames(*stamps_s: float) -> tuple[Frame, ...]:
    return tuple(Frame(int(t * 1_000_000), ETH, len(ETH)) for t in stamps_s)


@pytest.mark.parametrize(
    ("stamps", "expected_s"),
    [
        ((10, 11, 13), (0, 1, 3)),
        ((10, 9.5, 12), (0.5, 0, 2.5)),  # small reordering kept
        ((10, 10 + 86400 * 365, 10 + 86400 * 365 + 2), (0, 180, 182)),  # a year forward
        ((10 + 86400 * 365, 10, 11), (0, 180, 181)),  # a year back: forward, and no earlier
    ],
    ids=["plain", "reordered", "jump-forward", "jump-back"],
)
def test_offsets_shorten_long_jumps(
    stamps: tuple[float, ...], expected_s: tuple[float, ...]
) -> None:
    cap = Capture("c", frames(*stamps), 0)
    assert cap.offsets(max_jump_us=180_000_000) == tuple(int(t * 1e6) for t in expected_s)


def test_write_repeated_lays_copies_out_in_time(tmp_path: Path) -> None:
    a = Capture("a", frames(1000, 1001, 1003), 0)
    b = Capture("b", frames(50, 50.5), 2)
    out = tmp_path / "big.pcap"
    result = write_repeated(out, [a, b, Capture("empty", (), 0)], min_packets=11, gap_s=200,
                            start_s=1_000_000)  # fmt: skip
    assert (result.copies, result.packets, result.dropped_per_copy) == (3, 15, 2)
    assert check_capture(out).records == 15
    back = read_capture(out)
    got = [f.ts_us / 1e6 - 1_000_000 for f in back.frames]
    one = [0, 1, 3, 203, 203.5]  # b starts 200 s after a's last packet
    period = 203.5 + 200
    assert got == [t + k * period for k in range(3) for t in one]
    assert result.span_s == pytest.approx(3 * period)
    assert all(f.data == ETH for f in back.frames)


@pytest.mark.parametrize(("gap_s", "flows"), [(180, 3), (10, 1)], ids=["past-idle", "within-idle"])
def test_copies_are_separate_flows_when_the_gap_exceeds_the_idle_timeout(
    tmp_path: Path, gap_s: int, flows: int
) -> None:
    eth = FAKE_MACS + b"\x08\x00"
    req = eth + ip_udp("192.0.2.1", "198.51.100.1", 40000, 5000, b"ping")
    rsp = eth + ip_udp("198.51.100.1", "192.0.2.1", 5000, 40000, b"pong")
    cap = Capture("udp", tuple(Frame(t, d, len(d)) for t, d in [(0, req), (10_000, rsp)]), 0)
    out = tmp_path / "udp.pcap"
    write_repeated(out, [cap], min_packets=6, gap_s=gap_s)
    seen = list(NFStreamer(source=str(out), n_meters=1, idle_timeout=120,
                           statistical_analysis=False))  # fmt: skip
    assert len(seen) == flows
    assert sum(f.bidirectional_packets for f in seen) == 6


def test_every_corpus_capture_converts_without_loss(shared_dir: Path) -> None:
    corpus = shared_dir / "corpus" / "ndpi"
    paths = [p for p in sorted(corpus.iterdir()) if p.suffix in (".pcap", ".pcapng")]
    assert len(paths) > 50
    for path in paths:
        cap = read_capture(path)
        assert cap.dropped == 0, path.name
        if path.read_bytes()[:4] != b"\x0a\x0d\x0d\x0a":  # pcap: one record per packet
            assert len(cap.frames) == check_capture(path).records, path.name
