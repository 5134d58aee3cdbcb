"""Fixtures for the feed client tests: a fake feed server, its client, and a feed file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tests.agent_feed.fakefeed import TOKEN, TRUSTED, FakeFeedServer, new_history
from vpnreg.agent.feedclient import FeedClient, FeedMetrics, Timers
from vpnreg.clock import FrozenClock


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> FeedMetrics:
    return FeedMetrics(registry)


@pytest.fixture
def server(clock: FrozenClock) -> FakeFeedServer:
    return FakeFeedServer(history=new_history(clock.now()), clock=clock)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def http_client(
    server: FakeFeedServer, state_dir: Path, clock: FrozenClock, metrics: FeedMetrics
) -> Iterator[FeedClient]:
    client = FeedClient(
        source=server.base,
        trusted=TRUSTED,
        state_dir=state_dir,
        clock=clock,
        token=TOKEN,
        transport=server.transport(),
        metrics=metrics,
        timers=Timers(refresh_s=60, retry_s=10, expire_s=3600),
    )
    yield client
    client.close()
