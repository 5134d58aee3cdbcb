"""Schemathesis over /api/v1/openapi.json, as every caller: the document tells the truth.

Each caller (the public, a token bound to each kind of person, a gateway's token) runs every
operation's coverage cases and a few generated valid and invalid inputs (fixed, derandomized),
through all of schemathesis's default checks: no server error, and every status, content type,
header and body as the document says (tests/api/fuzzing.py). The full run, with many more
examples, is bench/bench_schemathesis.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.fuzzing import FuzzWorld, fuzz, fuzz_world, load_schema
from tests.api.harness import database_url
from vpnreg.web.policy import ALL_CALLERS

#: Generated examples per operation and mode, for each caller.
EXAMPLES = 5


@pytest.fixture(scope="module")
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzWorld]:
    urls = database_url("sqlite", tmp_path_factory, request)
    built = fuzz_world(next(urls), tmp_path_factory.mktemp("data"))
    try:
        yield built
    finally:
        built.api.app.state.database.dispose()
        built.api.app.state.feed.close()
        next(urls, None)


@pytest.mark.slow
@pytest.mark.parametrize("caller", ALL_CALLERS)
def test_every_operation_answers_as_documented(caller: str, world: FuzzWorld) -> None:
    outcome = fuzz(world, load_schema(world, caller), caller, examples=EXAMPLES)
    assert outcome.failures == [], "\n\n".join(outcome.failures)
    assert outcome.requests > 1000
    assert not [s for s in outcome.statuses if s >= 500]


@pytest.mark.slow
def test_an_applicants_token_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    """The caller whose token once found server errors, once more on the production database."""
    built = fuzz_world(pg_url, tmp_path)
    try:
        outcome = fuzz(built, load_schema(built, "applicant"), "applicant", examples=EXAMPLES)
    finally:
        built.api.app.state.database.dispose()
        built.api.app.state.feed.close()
    assert outcome.failures == [], "\n\n".join(outcome.failures)
    assert outcome.requests > 1000
    assert not [s for s in outcome.statuses if s >= 500]
