"""Builds small synthetic captures (pcap and pcapng bytes) for the agent tests."""

from __future__ import annotations

import ipaddress
import struct

ETH_IPV4 = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"


def ipv4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        1,
        0,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return header + payload


def udp(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ETH_IPV4 + ipv4(src, dst, 17, seg)


def tcp(src: str, sport: int, dst: str, dport: int, payload: bytes, *, seq: int = 1) -> bytes:
    """A PSH+ACK segment of an established connection (no checksum: NFStream does not check)."""
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 5 << 4, 0x18, 65535, 0, 0) + payload
    return ETH_IPV4 + ipv4(src, dst, 6, seg)


def gre(src: str, dst: str, payload: bytes) -> bytes:
    return ETH_IPV4 + ipv4(src, dst, 47, payload)


def pcap(
    frames: list[tuple[float, bytes]], *, order: str = "<", nano: bool = False, snaplen: int = 65535
) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(f"{order}IHHiIII", magic, 2, 4, 0, 0, snaplen, 1)
    scale = 1_000_000_000 if nano else 1_000_000
    for ts, frame in frames:
        sec = int(ts)
        frac = round((ts - sec) * scale)
        out += struct.pack(f"{order}IIII", sec, frac, len(frame), len(frame)) + frame
    return out


def pcapng_block(block_type: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def pcapng(frames: list[tuple[float, bytes]]) -> bytes:
    shb = pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = pcapng_block(1, struct.pack("<HHI", 1, 0, 65535))
    out = shb + idb
    for ts, frame in frames:
        us = int(ts * 1_000_000)
        body = struct.pack("<IIIII", 0, us >> 32, us & 0xFFFFFFFF, len(frame), len(frame))
        out += pcapng_block(6, body + frame)
    return out
