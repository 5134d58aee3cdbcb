"""One API per backend for each test module (see harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.harness import Api, build_api, database_url
from tests.fixtures.postgres import BACKENDS


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    urls = database_url(request.param, tmp_path_factory, request)
    url = next(urls)
    built = build_api(url, tmp_path_factory.mktemp("data"))
    try:
        yield built
    finally:
        built.app.state.database.dispose()
        built.app.state.feed.close()
        for client in {id(c): c for c in built.clients.values()}.values():
            client.close()
        next(urls, None)
