"""Structure check of pcap and pcapng files before NFStream reads them.

NFStream (libpcap) stops silently at the first damaged record, so a truncated capture would look
like a short, healthy one. `check_capture` walks every record header (streaming, never loading the
file) and raises `CaptureError` naming the file and what is wrong. The format comes from the magic
number, never from the file name.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

#: Records larger than this are implausible for any link type we read (libpcap's own limit).
MAX_RECORD = 256 * 1024

_PCAP_MAGICS: dict[bytes, tuple[str, bool]] = {
    # magic bytes as stored -> (struct byte order, nanosecond timestamps)
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\x3c\x4d": (">", True),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_PCAPNG_BOM_LE = b"\x4d\x3c\x2b\x1a"
_PCAPNG_BOM_BE = b"\x1a\x2b\x3c\x4d"


class CaptureFormat(StrEnum):
    PCAP = "pcap"
    PCAP_NS = "pcap-ns"
    PCAPNG = "pcapng"


@dataclass(frozen=True)
class CaptureInfo:
    """What the structure check learnt about a sound capture file."""

    path: Path
    format: CaptureFormat
    records: int
    size: int


class CaptureError(Exception):
    """A file that is not a complete, well-formed pcap or pcapng capture."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = Path(path)
        self.message = message


def check_capture(path: Path | str) -> CaptureInfo:
    """Check the whole structure of a capture; raise CaptureError if it is damaged or not one."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as fh:
            magic = fh.read(4)
            if len(magic) < 4:
                raise CaptureError(p, "not a pcap or pcapng file (shorter than a magic number)")
            if magic in _PCAP_MAGICS:
                order, nano = _PCAP_MAGICS[magic]
                records = _check_pcap(p, fh, order=order, nano=nano)
                fmt = CaptureFormat.PCAP_NS if nano else CaptureFormat.PCAP
            elif magic == _PCAPNG_SHB:
                records = _check_pcapng(p, fh, size=size)
                fmt = CaptureFormat.PCAPNG
            else:
                raise CaptureError(p, f"not a pcap or pcapng file (magic {magic.hex()})")
    except OSError as exc:
        raise CaptureError(p, f"cannot read: {exc.strerror or exc}") from exc
    return CaptureInfo(path=p, format=fmt, records=records, size=size)


def _check_pcap(path: Path, fh: BinaryIO, *, order: str, nano: bool) -> int:
    header = fh.read(20)
    if len(header) < 20:
        raise CaptureError(path, "truncated pcap global header")
    _major, _minor, _zone, _sigfigs, snaplen, _link = struct.unpack(f"{order}HHiIII", header)
    limit = min(snaplen, MAX_RECORD) if snaplen > 0 else MAX_RECORD
    frac_limit = 1_000_000_000 if nano else 1_000_000
    records = 0
    offset = 24
    while True:
        rec = fh.read(16)
        if not rec:
            return records
        if len(rec) < 16:
            raise CaptureError(path, f"truncated record header at byte {offset}")
        _sec, frac, incl_len, _orig_len = struct.unpack(f"{order}IIII", rec)
        if frac >= frac_limit:
            raise CaptureError(path, f"implausible record at byte {offset}: timestamp fraction")
        if incl_len > limit:
            raise CaptureError(
                path, f"implausible record at byte {offset}: length {incl_len} > {limit}"
            )
        data = fh.read(incl_len)
        if len(data) < incl_len:
            raise CaptureError(path, f"truncated record at byte {offset} (data past end of file)")
        records += 1
        offset += 16 + incl_len


def _check_pcapng(path: Path, fh: BinaryIO, *, size: int) -> int:
    fh.seek(0)
    order = "<"
    records = 0
    offset = 0
    while True:
        head = fh.read(8)
        if not head:
            return records
        if len(head) < 8:
            raise CaptureError(path, f"truncated block header at byte {offset}")
        block_type = head[:4]
        if block_type == _PCAPNG_SHB:
            bom = fh.read(4)
            if bom == _PCAPNG_BOM_LE:
                order = "<"
            elif bom == _PCAPNG_BOM_BE:
                order = ">"
            else:
                raise CaptureError(path, f"bad pcapng byte-order magic at byte {offset + 8}")
            fh.seek(-4, 1)
        (total,) = struct.unpack(f"{order}I", head[4:])
        if total < 12 or total % 4 != 0 or total > MAX_RECORD + 64 * 1024:
            raise CaptureError(path, f"bad pcapng block total length {total} at byte {offset}")
        if offset + total > size:
            raise CaptureError(path, f"truncated pcapng block at byte {offset}")
        _skip(fh, total - 12)
        trailer = fh.read(4)
        if len(trailer) < 4:
            raise CaptureError(path, f"truncated pcapng block at byte {offset}")
        (again,) = struct.unpack(f"{order}I", trailer)
        if again != total:
            raise CaptureError(
                path, f"pcapng block at byte {offset}: trailing length {again} != {total}"
            )
        if block_type not in (_PCAPNG_SHB,):
            records += 1
        offset += total


def _skip(fh: BinaryIO, n: int) -> None:
    # Read in chunks rather than seek: a seek past the end would not notice the truncation.
    while n > 0:
        chunk = fh.read(min(n, 1 << 16))
        if not chunk:
            return
        n -= len(chunk)
