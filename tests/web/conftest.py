"""The web tests' app: the API harness over one SQLite database per test module (modules that
need both backends, such as test_bounds, define their own `api`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.harness import Api, build_api, database_url


@pytest.fixture(scope="module")
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    urls = database_url("sqlite", tmp_path_factory, request)
    built = build_api(next(urls), tmp_path_factory.mktemp("data"))
    try:
        yield built
    finally:
        built.app.state.database.dispose()
        next(urls, None)
