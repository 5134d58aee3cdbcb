"""The registries the scale-out tests start their servers on (tests/scaleout/cluster.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.postgres import PostgresServer
from tests.scaleout.cluster import Registry, prepare


@pytest.fixture
def pg_registry(pg_server: PostgresServer, tmp_path: Path) -> Iterator[Registry]:
    name = pg_server.create_database("scale")
    try:
        yield prepare(pg_server.url(name), tmp_path)
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def sqlite_registry(tmp_path: Path) -> Registry:
    return prepare(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path)
