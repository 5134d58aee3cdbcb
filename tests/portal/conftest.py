"""Fixtures of the portal tests: a small registry and an app over it with a TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.portal.world import PortalWorld, build_world
from vpnreg.clock import FrozenClock
from vpnreg.web.app import create_app


@pytest.fixture
def world(tmp_path: Path, clock: FrozenClock) -> PortalWorld:
    return build_world(tmp_path, clock.now())


@pytest.fixture
def client(world: PortalWorld, clock: FrozenClock) -> Iterator[TestClient]:
    app = create_app(world.settings, clock=clock)
    with TestClient(app) as client:
        yield client
    app.state.database.dispose()
