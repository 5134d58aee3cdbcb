"""Shared fixtures for the whole test suite, and the markers that keep `make check` quick.

Markers (pyproject.toml): `postgres`, `lab`, `browser`, `slow`. `make check` runs the tests
carrying none of them, as any user, with no server, namespace or browser; `make test` runs them
all. Tests that need PostgreSQL, the lab or Chromium are marked automatically, from the fixtures
they use and where they live (tests/fixtures/resources.py); `slow` is marked by hand.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from hypothesis import settings

from tests.fixtures.resources import mark_resources, remember_selected
from vpnreg.clock import FrozenClock
from vpnreg.registry.services import passwords

pytest_plugins = ["tests.fixtures.postgres"]

#: The shared material beside the checkout (captures, lab recipe); read-only.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# Passwords hashed inside the test process use argon2id at its cheapest cost. The production
# parameters cost a few hundred milliseconds a hash on purpose, and every portal and API test
# creates and signs in several users; the hashes are still argon2id, and verification reads the
# parameters from each hash, so hashes made either way verify. Set here, when this file is
# imported, so it holds before any other conftest hashes a password at import. (A `vpnreg`
# started as a subprocess hashes as in production.)
passwords._HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

# `make check` runs the property tests with fewer examples (`--hypothesis-profile=quick`); a test
# that sets its own `max_examples` keeps it. `make test` runs Hypothesis's default profile.
# No profile has a deadline: a deadline is a timed assertion, and on a loaded machine (CI shares
# its cores) an example that takes 300 ms once is no defect. Speed lives in bench/.
settings.register_profile("default", deadline=None)
settings.register_profile("quick", max_examples=25, deadline=None)
settings.load_profile("default")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what needs PostgreSQL, the lab or Chromium before -m selects (tryfirst)."""
    mark_resources(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    remember_selected(session)


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
