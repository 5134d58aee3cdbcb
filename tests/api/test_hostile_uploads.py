"""Hostile uploads through the API route: each refused with 422 problem+json and its code,
nothing stored on disk or in the application's documents (the portal: tests/portal)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.harness import Api
from tests.fixtures.documents import HOSTILE_UPLOADS, pdf

CASES = [pytest.param(n, c, k, id=f"{k}-{n}") for n, c, k in HOSTILE_UPLOADS]


def stored(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


@pytest.fixture(scope="module")
def application(api: Api) -> int:
    app_id = api.create("ali", ["192.0.2.240/28"])["id"]
    assert isinstance(app_id, int)
    return app_id


@pytest.mark.parametrize(("name", "content", "code"), CASES)
def test_the_api_refuses_a_hostile_upload(
    api: Api, application: int, name: str, content: bytes, code: str
) -> None:
    client = api.client("ali")
    url = f"/api/v1/applications/{application}/documents"
    directory: Path = api.app.state.document_dir
    before = (client.get(url).json(), stored(directory))
    response = client.post(url, files={"file": (name, content)}, data={"kind": "lease"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["code"] for e in response.json()["errors"]] == [code]
    assert len(response.content) < 2000  # the content is never echoed
    assert (client.get(url).json(), stored(directory)) == before


def test_the_api_stores_a_traversal_name_as_text_only(api: Api, application: int) -> None:
    client = api.client("ali")
    url = f"/api/v1/applications/{application}/documents"
    directory: Path = api.app.state.document_dir
    response = client.post(
        url, files={"file": ("../../../../tmp/evil.pdf", pdf(b"%traversal\n"))}, data={"kind": "x"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == "evil.pdf"
    assert all(p.resolve().is_relative_to(directory.resolve()) for p in stored(directory))
    assert not Path("/tmp/evil.pdf").exists()
