"""Security headers on every answer, and templates the Content-Security-Policy does not break."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import vpnreg.web
from vpnreg.registry.db import upgrade
from vpnreg.settings import Settings
from vpnreg.web.app import create_app
from vpnreg.web.headers import CSP

TEMPLATES = Path(vpnreg.web.__file__).parent / "templates"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    data = tmp_path_factory.mktemp("headers")
    url = f"sqlite:///{data / 'r.db'}"
    upgrade(url)
    settings = Settings(secret_key="k" * 40, database_url=url, data_dir=str(data))
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.mark.parametrize(
    "path",
    ["/", "/login", "/static/portal.css", "/api/v1/openapi.json", "/nonexistent", "/queue"],
)
def test_every_answer_carries_the_security_headers(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    assert csp == CSP


def test_the_swagger_page_keeps_its_cdn_assets_but_cannot_be_framed(client: TestClient) -> None:
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_templates_have_no_inline_script_or_style(template: str) -> None:
    text = (TEMPLATES / template).read_text()
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) is None
    assert re.search(r"\sstyle=", text) is None
    assert re.search(r"\son[a-z]+=", text) is None
    assert "<style" not in text
