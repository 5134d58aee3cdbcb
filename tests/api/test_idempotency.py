"""`Idempotency-Key` on creating an application through the API, on both backends: a repeat
answers 201 with the first application, another body under the key is 422 problem+json, a
malformed key 422, and the header stays optional."""

from __future__ import annotations

import pytest

from tests.api.harness import Api

PROBLEM = "application/problem+json"


def _post(api: Api, who: str, prefix: str, key: str | None) -> tuple[int, dict[str, object]]:
    headers = {"Idempotency-Key": key} if key is not None else {}
    response = api.client(who).post(
        "/api/v1/applications",
        json={"isp_id": api.world.isp, "prefixes": [{"prefix": prefix, "peers": []}]},
        headers=headers,
    )
    if response.status_code >= 400:
        assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    return response.status_code, body


def _count(api: Api, who: str) -> int:
    total = api.client(who).get("/api/v1/applications").json()["total"]
    assert isinstance(total, int)
    return total


def test_a_repeated_create_answers_with_the_first_application(api: Api) -> None:
    before = _count(api, "ali")
    status, first = _post(api, "ali", "203.0.113.0/28", "9b1deb4d-3b7d-4bad")
    assert status == 201
    status, again = _post(api, "ali", "203.0.113.0/28", "9b1deb4d-3b7d-4bad")
    assert status == 201 and again == first
    assert _count(api, "ali") == before + 1
    # Without the header the same body is another draft: the key is optional.
    status, other = _post(api, "ali", "203.0.113.0/28", None)
    assert status == 201 and other["id"] != first["id"]


def test_the_same_key_with_another_body_is_refused(api: Api) -> None:
    assert _post(api, "ali", "203.0.113.16/28", "retry-me")[0] == 201
    before = _count(api, "ali")
    status, problem = _post(api, "ali", "203.0.113.32/28", "retry-me")
    assert status == 422
    assert "different request" in str(problem["detail"])
    assert _count(api, "ali") == before


@pytest.mark.parametrize("key", ["", "with space", "x" * 129])
def test_a_malformed_key_is_422(api: Api, key: str) -> None:
    before = _count(api, "ali")
    status, _ = _post(api, "ali", "203.0.113.48/28", key)
    assert status == 422
    assert _count(api, "ali") == before
