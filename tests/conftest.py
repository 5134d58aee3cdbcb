"""Shared fixtures for the whole test suite."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from vpnreg.clock import FrozenClock

pytest_plugins = ["tests.fixtures.postgres"]

#: The shared material beside the checkout (captures, lab recipe); read-only.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(
            f"shared material not found at {SHARED}: tests need ../shared beside the checkout"
        )
    return SHARED
