"""Structure check of capture files: sound files pass, damaged ones name the damage."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.agent.badcaptures import (
    pcapng_huge_block,
    pcapng_huge_second_block,
    random_bytes,
    unprivileged,
)
from tests.agent.pcapbuild import pcap, pcapng, udp
from vpnreg.agent.pcapfile import CaptureError, CaptureFormat, check_capture

FRAME = udp("192.0.2.1", 40000, "198.51.100.1", 53, b"x" * 40)
FRAMES = [(1_700_000_000.0 + i / 10, FRAME) for i in range(3)]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        pytest.param(pcap(FRAMES), CaptureFormat.PCAP, id="pcap-le-micro"),
        pytest.param(pcap(FRAMES, order=">"), CaptureFormat.PCAP, id="pcap-be-micro"),
        pytest.param(pcap(FRAMES, nano=True), CaptureFormat.PCAP_NS, id="pcap-le-nano"),
        pytest.param(pcap(FRAMES, order=">", nano=True), CaptureFormat.PCAP_NS, id="pcap-be-nano"),
        pytest.param(pcapng(FRAMES), CaptureFormat.PCAPNG, id="pcapng"),
        pytest.param(pcap([]), CaptureFormat.PCAP, id="pcap-no-records"),
    ],
)
def test_sound_captures_pass(tmp_path: Path, data: bytes, fmt: CaptureFormat) -> None:
    # The name says pcapng for every case: the format comes from the magic number.
    info = check_capture(write(tmp_path, "capture.pcapng", data))
    assert info.format is fmt
    assert info.size == len(data)


def test_record_count(tmp_path: Path) -> None:
    assert check_capture(write(tmp_path, "a.pcap", pcap(FRAMES))).records == 3


def _pcap_bad_frac() -> bytes:
    data = bytearray(pcap(FRAMES))
    struct.pack_into("<I", data, 24 + 4, 1_000_000)
    return bytes(data)


def _pcap_huge_record() -> bytes:
    data = bytearray(pcap(FRAMES, snaplen=0))
    struct.pack_into("<I", data, 24 + 8, 300 * 1024)
    return bytes(data)


def _pcapng_with(offset_from_end_of_first_epb: int, value: int) -> bytes:
    data = bytearray(pcapng(FRAMES))
    shb_len = struct.unpack_from("<I", data, 4)[0]
    idb_len = struct.unpack_from("<I", data, shb_len + 4)[0]
    epb = shb_len + idb_len
    epb_len = struct.unpack_from("<I", data, epb + 4)[0]
    struct.pack_into("<I", data, epb + offset_from_end_of_first_epb % epb_len, value)
    return bytes(data)


DAMAGED = [
    ("text-file", b"hello, this is not a capture\n", "not a pcap or pcapng file"),
    ("empty", b"", "shorter than a magic number"),
    ("truncated-global-header", pcap(FRAMES)[:20], "truncated pcap global header"),
    ("truncated-record-header", pcap(FRAMES)[: 24 + 10], "truncated record header"),
    ("record-past-eof", pcap(FRAMES)[:-5], "data past end of file"),
    ("incl-len-over-snaplen", pcap(FRAMES, snaplen=32), "implausible record"),
    ("incl-len-over-256k", _pcap_huge_record(), "implausible record"),
    ("usec-over-a-second", _pcap_bad_frac(), "timestamp fraction"),
    ("pcapng-truncated-block", pcapng(FRAMES)[:-6], "truncated pcapng block"),
    ("pcapng-bad-total-length", _pcapng_with(4, 7), "bad pcapng block total length"),
    ("pcapng-trailing-mismatch", _pcapng_with(-4, 96), "trailing length"),
    ("random-bytes", random_bytes(), "not a pcap or pcapng file (magic"),
    ("pcap-magic-only", pcap(FRAMES)[:4], "truncated pcap global header"),
    ("pcapng-truncated-shb", pcapng(FRAMES)[:6], "truncated block header"),
    ("pcapng-4gib-section-header", pcapng_huge_block(), "block total length 4294967292"),
    ("pcapng-1gib-packet-block", pcapng_huge_second_block(), "block total length 1073741824"),
    (
        "pcapng-bad-bom",
        pcapng(FRAMES)[:8] + b"\x00\x00\x00\x00" + pcapng(FRAMES)[12:],
        "byte-order magic",
    ),
]


@pytest.mark.parametrize(("data", "message"), [pytest.param(d, m, id=i) for i, d, m in DAMAGED])
def test_damaged_captures_are_refused(tmp_path: Path, data: bytes, message: str) -> None:
    path = write(tmp_path, "damaged.pcap", data)
    with pytest.raises(CaptureError) as info:
        check_capture(path)
    assert message in info.value.message
    assert info.value.path == path
    assert str(path) in str(info.value)


def test_missing_file_is_a_capture_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="cannot read"):
        check_capture(tmp_path / "absent.pcap")


def test_a_directory_is_a_capture_error(tmp_path: Path) -> None:
    where = tmp_path / "captures.pcap"
    where.mkdir()
    with pytest.raises(CaptureError, match="cannot read: Is a directory") as info:
        check_capture(where)
    assert info.value.path == where


def test_an_unreadable_file_is_a_capture_error(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.pcap", pcap(FRAMES))
    path.chmod(0)
    with unprivileged(), pytest.raises(CaptureError, match="cannot read: Permission denied"):
        check_capture(path)


def test_every_corpus_capture_is_sound(shared_dir: Path) -> None:
    files = sorted((shared_dir / "corpus" / "ndpi").glob("*.pcap*"))
    assert len(files) == 81
    for path in files:
        assert check_capture(path).records > 0
