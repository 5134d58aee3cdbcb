"""Tracking numbers: the year and a random part, so nobody can walk through them by counting.

The random part is 8 characters from an alphabet without look-alikes (no 0/O, no 1/I/L), read
aloud or typed from paper without doubt: VPN-2026-7KQ3-M9XD. The randomness is the caller's;
this module only turns bytes into the shape and recognises the shape.
"""

from __future__ import annotations

import re

#: 31 characters: digits 2-9 and the capital letters without I, L and O.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
PREFIX = "VPN"
#: Characters of the random part (two groups of four): 31**8, about 8.5e11 numbers a year.
RANDOM_CHARS = 8
#: Bytes of randomness asked for: 80 bits reduced to 31**8 values, so the bias is below 2**-40.
RANDOM_BYTES = 10

_SHAPE = re.compile(rf"^{PREFIX}-\d{{4}}-[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}$")


def tracking_number(year: int, random: bytes) -> str:
    """VPN-<year>-XXXX-XXXX, the X drawn from `random` (at least RANDOM_BYTES bytes)."""
    if len(random) < RANDOM_BYTES:
        raise ValueError(f"a tracking number needs {RANDOM_BYTES} random bytes, got {len(random)}")
    value = int.from_bytes(random[:RANDOM_BYTES], "big")
    chars = []
    for _ in range(RANDOM_CHARS):
        value, digit = divmod(value, len(ALPHABET))
        chars.append(ALPHABET[digit])
    part = "".join(chars)
    return f"{PREFIX}-{year:04d}-{part[:4]}-{part[4:]}"


def is_random_tracking_number(text: str) -> bool:
    """Whether `text` has the shape tracking_number makes (older numbers are sequential)."""
    return _SHAPE.match(text) is not None
