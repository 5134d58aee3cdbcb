"""Tracking numbers from caller-given randomness: shape, alphabet, and no counting."""

from __future__ import annotations

import random

import pytest

from vpnreg.core.tracking import (
    ALPHABET,
    RANDOM_BYTES,
    is_random_tracking_number,
    tracking_number,
)


def test_the_alphabet_has_no_look_alikes() -> None:
    assert not set("01ILO") & set(ALPHABET)
    assert len(set(ALPHABET)) == len(ALPHABET) == 31


@pytest.mark.parametrize(
    ("random_bytes", "expected"),
    [
        (bytes(RANDOM_BYTES), "VPN-2026-2222-2222"),
        (b"\x00" * (RANDOM_BYTES - 1) + b"\x01", "VPN-2026-3222-2222"),
        (b"\x00" * (RANDOM_BYTES - 1) + bytes([31]), "VPN-2026-2322-2222"),
    ],
    ids=["zero", "one", "thirty-one"],
)
def test_the_random_part_is_the_bytes_in_base_31(random_bytes: bytes, expected: str) -> None:
    assert tracking_number(2026, random_bytes) == expected


def test_numbers_have_the_shape_and_do_not_follow_each_other() -> None:
    source = random.Random(15)
    numbers = [tracking_number(2026, source.randbytes(RANDOM_BYTES)) for _ in range(2000)]
    assert all(is_random_tracking_number(n) for n in numbers)
    assert len(set(numbers)) == len(numbers)
    # Every character of the alphabet turns up in the random part: nothing left constant.
    assert set("".join(n[9:].replace("-", "") for n in numbers)) == set(ALPHABET)


def test_too_little_randomness_is_refused() -> None:
    with pytest.raises(ValueError, match="random bytes"):
        tracking_number(2026, b"\x01\x02")


@pytest.mark.parametrize(
    "text",
    ["VPN-2026-000123", "VPN-2026-7KQ3-M9X0", "VPN-26-7KQ3-M9XD", "vpn-2026-7kq3-m9xd"],
    ids=["sequential", "zero", "short-year", "lower-case"],
)
def test_other_shapes_are_not_random_numbers(text: str) -> None:
    assert not is_random_tracking_number(text)
