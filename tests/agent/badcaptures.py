"""Hostile or broken capture files, one per kind, written into a directory for the CLI tests.

Each kind carries the words its one-line refusal must contain. The unreadable file is made
unreadable by mode 000; tests running as root drop the capabilities that would let them read it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.agent.pcapbuild import pcap, pcapng, udp

FRAME = udp("192.0.2.1", 40000, "198.51.100.1", 53, b"x" * 40)
FRAMES = [(1_700_000_000.0 + i / 10, FRAME) for i in range(3)]

#: The uid of `nobody` on Debian, for runs as root that need a file root could still read.
NOBODY = 65534
#: prctl(2) and capabilities(7) numbers: drop a capability from the bounding set before exec.
PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2


def random_bytes(size: int = 4096, seed: int = 16) -> bytes:
    """Seeded noise whose first four bytes are no capture magic (checked, not hoped for)."""
    data = random.Random(seed).randbytes(size)
    assert data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x0a\x0d\x0d\x0a")
    return data


def pcapng_huge_block(length: int = 0xFFFF_FFFC) -> bytes:
    """A pcapng whose section header claims a block of ~4 GiB (a multiple of four)."""
    data = bytearray(pcapng(FRAMES))
    struct.pack_into("<I", data, 4, length)
    return bytes(data)


def pcapng_huge_second_block() -> bytes:
    """A sound section header followed by a packet block claiming 1 GiB."""
    data = bytearray(pcapng(FRAMES))
    shb_len = struct.unpack_from("<I", data, 4)[0]
    struct.pack_into("<I", data, shb_len + 4, 1 << 30)
    return bytes(data)


@dataclass(frozen=True)
class BadCapture:
    name: str
    write: Callable[[Path], None]
    says: str


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _directory(path: Path) -> None:
    path.mkdir()


def _unreadable(path: Path) -> None:
    path.write_bytes(pcap(FRAMES))
    path.chmod(0)


BAD_CAPTURES = [
    BadCapture("zero-bytes.pcap", _bytes(b""), "shorter than a magic number"),
    BadCapture("truncated-header.pcap", _bytes(pcap(FRAMES)[:12]), "truncated pcap global header"),
    BadCapture("truncated-shb.pcapng", _bytes(pcapng(FRAMES)[:6]), "truncated block header"),
    BadCapture("random.pcap", _bytes(random_bytes()), "not a pcap or pcapng file"),
    BadCapture("huge-shb.pcapng", _bytes(pcapng_huge_block()), "block total length 4294967292"),
    BadCapture("huge-epb.pcapng", _bytes(pcapng_huge_second_block()), "block total length"),
    BadCapture("notes.pcap", _bytes(b"# capture notes\nnot a capture\n"), "not a pcap"),
    BadCapture("a-directory.pcap", _directory, "cannot read: Is a directory"),
    BadCapture("unreadable.pcap", _unreadable, "cannot read: Permission denied"),
    BadCapture("absent.pcap", lambda _path: None, "cannot read: No such file"),
]


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block as `nobody` when the tests run as root (root reads a mode-000 file)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def without_file_override() -> None:
    """preexec_fn for subprocesses: a root process keeps its uid (so it can still reach the
    interpreter under /root) but loses the capabilities that let it read a mode-000 file."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
