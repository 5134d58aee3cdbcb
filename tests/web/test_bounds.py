"""Numbers past what the database holds (past MAX_ID) are refused with a 4xx everywhere: in
paths, queries, JSON bodies and portal forms, as every caller. They used to reach the driver
and answer 500 (OverflowError)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.api.harness import Api, build_api, database_url, relogin
from tests.fixtures.postgres import BACKENDS
from vpnreg.web.bounds import MAX_ID, parse_id
from vpnreg.web.policy import ALL_CALLERS, effective_routes

HUGE = str(2**64)
JUST_TOO_BIG = str(MAX_ID + 1)


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    urls = database_url(request.param, tmp_path_factory, request)
    built = build_api(next(urls), tmp_path_factory.mktemp("data"))
    try:
        yield built
    finally:
        built.app.state.database.dispose()
        next(urls, None)


def test_parse_id_keeps_what_the_database_holds() -> None:
    assert parse_id(str(MAX_ID)) == MAX_ID
    assert parse_id("42") == 42
    for bad in (JUST_TOO_BIG, HUGE, "", "-1", "1e3", "٣", " 7x"):
        assert parse_id(bad) is None, bad


def test_huge_ids_in_every_path_answer_4xx_as_every_caller(api: Api) -> None:
    routes = sorted(
        (method, entry.path)
        for entry in effective_routes(api.app)
        if entry.enforced and re.search(r"\{\w+_id\}", entry.path)
        for method in entry.methods
    )
    assert len(routes) > 15
    errors = []
    for method, path in routes:
        url = re.sub(r"\{(\w+)_id\}", HUGE, path)
        for caller in ALL_CALLERS:
            response = api.client(caller).request(
                method,
                url,
                follow_redirects=False,
                headers={"If-Match": '"1"'},
                data={"version": "1", "text": "x", "active": "no", "role": "isp"}
                if method == "POST"
                else None,
            )
            if response.status_code >= 500:
                errors.append(f"{method} {url} as {caller}: {response.status_code}")
    relogin(api)
    assert errors == []


@pytest.mark.parametrize(
    "query",
    [
        f"offset={HUGE}",
        f"isp_id={HUGE}",
        f"organisation_id={HUGE}",
        f"offset={JUST_TOO_BIG}",
    ],
)
def test_huge_numbers_in_queries_are_422(api: Api, query: str) -> None:
    response = api.client("reg1").get(f"/api/v1/applications?{query}")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_huge_ids_in_a_body_are_422(api: Api) -> None:
    response = api.client("ali").post(
        "/api/v1/applications",
        json={"isp_id": int(HUGE), "prefixes": [{"prefix": "198.51.100.0/28", "peers": []}]},
    )
    assert response.status_code == 422, response.text


def test_huge_numbers_in_portal_forms_are_refused_cleanly(api: Api) -> None:
    client = api.client("reg1")
    bulk = client.post(
        "/queue/bulk",
        data={"action": "approve", "item": [f"{HUGE}:1", f"1:{HUGE}"], "confirm": "yes"},
    )
    assert bulk.status_code == 422  # no application picked: nothing decided
    decide = client.post("/queue/1/decide", data={"action": "approve", "version": HUGE})
    assert decide.status_code in (404, 422)
    applicant = api.client("ali")
    form = applicant.post("/applications/1/withdraw", data={"version": HUGE})
    assert form.status_code == 422
