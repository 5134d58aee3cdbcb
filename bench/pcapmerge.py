"""Builds one large Ethernet pcap from many small captures, repeated with shifted timestamps.

Used by the gateway benchmark to get a file of a million packets or more out of the nDPI corpus
without mergecap. Reads pcap (micro- or nanosecond) and pcapng (EPB, obsolete PB; per-interface
`if_tsresol`/`if_tsoffset`), converts the link types that carry plain IP (null/loopback, raw IP,
Linux cooked v1/v2) to Ethernet with a made-up MAC header, and drops the rest (counted).

Each capture is laid out after the previous one with a gap longer than the flow meter's idle
timeout, so no flow of one copy (or one capture) merges with a flow of the next even though the
copies repeat the same addresses and ports: the meter has expired every earlier flow first.
Time jumps inside a capture longer than that gap are shortened to it (see `Capture.offsets`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

LINKTYPE_ETHERNET = 1
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
#: Destination and source MAC of the made-up Ethernet header (locally administered).
FAKE_MACS = bytes.fromhex("020000000002020000000001")
SNAPLEN = 262_144

_PCAP_MAGICS: dict[bytes, tuple[str, int]] = {
    # magic as stored -> (byte order, ticks per second)
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
_PCAPNG_SHB = 0x0A0D0D0A


@dataclass(frozen=True)
class Frame:
    """One Ethernet frame and its capture time in microseconds."""

    ts_us: int
    data: bytes
    orig_len: int


@dataclass(frozen=True)
class Capture:
    """A capture's frames, converted to Ethernet, and how many records could not be."""

    name: str
    frames: tuple[Frame, ...]
    dropped: int

    def offsets(self, *, max_jump_us: int) -> tuple[int, ...]:
        """Each frame's time from the capture's start, with every jump between consecutive
        records of more than `max_jump_us` (forward, or back: some corpus files join captures
        made years apart) made a forward jump of exactly `max_jump_us`."""
        out: list[int] = []
        at, prev = 0, None
        for f in self.frames:
            if prev is not None:
                step = f.ts_us - prev
                at += max_jump_us if abs(step) > max_jump_us else step
            out.append(at)
            prev = f.ts_us
        base = min(out, default=0)
        return tuple(t - base for t in out)


@dataclass(frozen=True)
class MergeResult:
    copies: int
    packets: int
    dropped_per_copy: int
    span_s: float


def _ip_ethertype(payload: bytes) -> int | None:
    if not payload:
        return None
    version = payload[0] >> 4
    return {4: ETHERTYPE_IPV4, 6: ETHERTYPE_IPV6}.get(version)


def to_ethernet(linktype: int, data: bytes) -> tuple[bytes, int] | None:
    """(Ethernet frame, bytes added to the original length), or None for other link types."""
    if linktype == LINKTYPE_ETHERNET:
        return data, 0
    if linktype in (0, 108):  # BSD null / OpenBSD loop: 4-byte address family
        payload, removed = data[4:], 4
    elif linktype in (12, 14, 101, 228, 229):  # raw IP
        payload, removed = data, 0
    elif linktype == 113 and data[14:16] in (b"\x08\x00", b"\x86\xdd"):  # Linux cooked v1
        payload, removed = data[16:], 16
    elif linktype == 276 and data[0:2] in (b"\x08\x00", b"\x86\xdd"):  # Linux cooked v2
        payload, removed = data[20:], 20
    else:
        return None
    ethertype = _ip_ethertype(payload)
    if ethertype is None:
        return None
    return FAKE_MACS + ethertype.to_bytes(2, "big") + payload, 14 - removed


def _read_exact(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise ValueError(f"truncated capture ({len(data)} of {n} bytes)")
    return data


def _pcap_records(fh: BinaryIO, order: str, ticks: int) -> Iterator[tuple[int, int, bytes, int]]:
    header = _read_exact(fh, 20)
    linktype = struct.unpack(f"{order}I", header[16:20])[0] & 0x0FFFFFFF
    while True:
        head = fh.read(16)
        if not head:
            return
        if len(head) < 16:
            raise ValueError("truncated pcap record header")
        sec, frac, incl, orig = struct.unpack(f"{order}IIII", head)
        yield linktype, sec * 1_000_000 + frac * 1_000_000 // ticks, _read_exact(fh, incl), orig


def _tsresol(options: bytes, order: str) -> tuple[int, int]:
    """(ticks per second, offset in seconds) from an interface description's options."""
    ticks, offset, i = 1_000_000, 0, 0
    while i + 4 <= len(options):
        code, length = struct.unpack(f"{order}HH", options[i : i + 4])
        value = options[i + 4 : i + 4 + length]
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = value[0]
            ticks = 2 ** (v & 0x7F) if v & 0x80 else 10 ** (v & 0x7F)
        elif code == 14 and length >= 8:
            offset = struct.unpack(f"{order}q", value[:8])[0]
        i += 4 + length + (-length % 4)
    return ticks, offset


def _pcapng_records(fh: BinaryIO) -> Iterator[tuple[int, int, bytes, int]]:
    order = "<"
    interfaces: list[tuple[int, int, int]] = []  # (linktype, ticks per second, offset s)
    while True:
        head = fh.read(8)
        if not head:
            return
        if len(head) < 8:
            raise ValueError("truncated pcapng block header")
        if struct.unpack("<I", head[:4])[0] == _PCAPNG_SHB:
            # the length's byte order comes from the byte-order magic that follows it
            order = "<" if _read_exact(fh, 4) == b"\x4d\x3c\x2b\x1a" else ">"
            total = struct.unpack(f"{order}I", head[4:8])[0]
            _read_exact(fh, total - 12)
            interfaces = []
            continue
        block_type, total = struct.unpack(f"{order}II", head)
        body = _read_exact(fh, total - 8)[:-4]
        if block_type == 1:  # interface description
            linktype = struct.unpack(f"{order}H", body[:2])[0]
            interfaces.append((linktype, *_tsresol(body[8:], order)))
        elif block_type in (6, 2):  # enhanced packet, obsolete packet
            if block_type == 6:
                iface, hi, lo, incl, orig = struct.unpack(f"{order}IIIII", body[:20])
            else:
                iface, _drops, hi, lo, incl, orig = struct.unpack(f"{order}HHIIII", body[:20])
            linktype, ticks, offset = interfaces[iface]
            stamp = (hi << 32) | lo
            ts_us = offset * 1_000_000 + stamp * 1_000_000 // ticks
            yield linktype, ts_us, body[20 : 20 + incl], orig
        elif block_type == 3:  # simple packet: no time stamp; not in the corpus, refused
            raise ValueError("pcapng simple packet blocks are not supported")


def read_capture(path: Path) -> Capture:
    """Every record of a pcap or pcapng file, as Ethernet frames where that is possible."""
    frames: list[Frame] = []
    dropped = 0
    with path.open("rb") as fh:
        magic = fh.read(4)
        if magic in _PCAP_MAGICS:
            records = _pcap_records(fh, *_PCAP_MAGICS[magic])
        elif magic == b"\x0a\x0d\x0d\x0a":
            fh.seek(0)
            records = _pcapng_records(fh)
        else:
            raise ValueError(f"{path}: not a pcap or pcapng file")
        for linktype, ts_us, data, orig in records:
            converted = to_ethernet(linktype, data)
            if converted is None:
                dropped += 1
                continue
            frame, grown = converted
            frames.append(Frame(ts_us, frame, max(orig + grown, len(frame))))
    return Capture(path.name, tuple(frames), dropped)


def write_repeated(
    dest: Path,
    captures: Iterable[Capture],
    *,
    min_packets: int,
    gap_s: int,
    start_s: int = 1_700_000_000,
) -> MergeResult:
    """Write the captures one after another, again and again, until `min_packets` are written.

    Each capture's time stamps are moved so it starts `gap_s` after the previous one ended; its
    own packet order and spacing are kept.
    """
    caps = [c for c in captures if c.frames]
    per_copy = sum(len(c.frames) for c in caps)
    if per_copy == 0:
        raise ValueError("no Ethernet frames to write")
    gap_us = gap_s * 1_000_000
    timelines = [c.offsets(max_jump_us=gap_us) for c in caps]
    copies = -(-min_packets // per_copy)
    cursor = start_s * 1_000_000
    written = 0
    pack = struct.Struct("<IIII").pack
    with dest.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        for _ in range(copies):
            for cap, offsets in zip(caps, timelines, strict=True):
                chunk = []
                for f, offset in zip(cap.frames, offsets, strict=True):
                    ts = cursor + offset
                    chunk.append(pack(ts // 1_000_000, ts % 1_000_000, len(f.data), f.orig_len))
                    chunk.append(f.data)
                out.write(b"".join(chunk))
                written += len(cap.frames)
                cursor += max(offsets) + gap_us
    return MergeResult(
        copies=copies,
        packets=written,
        dropped_per_copy=sum(c.dropped for c in caps),
        span_s=(cursor - start_s * 1_000_000) / 1e6,
    )
