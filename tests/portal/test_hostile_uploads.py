"""Hostile uploads through the portal's upload form: each refused on the page with its reason
(422), nothing stored on disk or listed on the application."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.documents import HOSTILE_UPLOADS
from tests.portal.forms import apply, csrf, sign_in
from tests.portal.world import PortalWorld

CASES = [pytest.param(n, c, k, id=f"{k}-{n}") for n, c, k in HOSTILE_UPLOADS]


def stored(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


@pytest.mark.parametrize(("name", "content", "code"), CASES)
def test_the_portal_refuses_a_hostile_upload(
    client: TestClient, world: PortalWorld, name: str, content: bytes, code: str
) -> None:
    sign_in(client, "ali")
    app_id = apply(client, world, "192.0.2.0/28")
    page = f"/applications/{app_id}"
    directory = Path(world.settings.data_dir) / "documents"
    before = stored(directory)
    response = client.post(
        f"{page}/documents",
        data={"csrf_token": csrf(client, page), "kind": "supporting_document"},
        files={"file": (name, content, "application/pdf")},
        follow_redirects=False,
    )
    assert response.status_code == 422, response.text[:500]
    assert {"empty": "empty", "too_large": "larger than", "unsupported_type": "only PDF and PNG"}[
        code
    ] in response.text
    assert stored(directory) == before
    assert name.rsplit("/", 1)[-1] not in client.get(page).text  # not listed as a document
