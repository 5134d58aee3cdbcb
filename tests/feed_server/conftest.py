"""Fixtures for the feed server tests: the registry world, and committed registries in files or
PostgreSQL databases for the web app and the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session

from tests.registry.conftest import World, build_world, make_config
from vpnreg.clock import FrozenClock
from vpnreg.registry import services
from vpnreg.registry.db import make_engine, make_session_factory, upgrade


@pytest.fixture
def config() -> services.ServiceConfig:
    return make_config()


@pytest.fixture
def world(session: Session, clock: FrozenClock, config: services.ServiceConfig) -> World:
    return build_world(session, clock.now(), config)


@dataclass
class Committed:
    """A migrated registry whose changes are really committed (other processes see them)."""

    url: str
    session: Session
    world: World
    config: services.ServiceConfig


@pytest.fixture
def committed(
    fresh_url: str, clock: FrozenClock, config: services.ServiceConfig
) -> Iterator[Committed]:
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    session = make_session_factory(engine)()
    try:
        yield Committed(fresh_url, session, build_world(session, clock.now(), config), config)
    finally:
        session.close()
        engine.dispose()
