"""The app factory: public pages, and the production guard on the secret key."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from vpnreg.settings import Settings
from vpnreg.web.app import SESSION_COOKIE, create_app
from vpnreg.web.security import InsecureSettings, csrf_token, csrf_valid


def test_home_page_is_public_html_with_lookup_and_links() -> None:
    client = TestClient(create_app(Settings(secret_key="k" * 40)))
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'name="ip"' in response.text
    assert 'href="/apply"' in response.text
    assert 'href="/login"' in response.text


def test_login_form_has_a_csrf_token_bound_to_the_session_cookie() -> None:
    key = "k" * 40
    client = TestClient(create_app(Settings(secret_key=key)))
    response = client.get("/login")
    assert response.status_code == 200
    match = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', response.text)
    assert match is not None
    cookie = response.cookies[SESSION_COOKIE]
    assert match.group(1) == csrf_token(key.encode(), cookie)
    assert "httponly" in response.headers["set-cookie"].lower()
    assert "samesite=lax" in response.headers["set-cookie"].lower()


def test_csrf_tokens_do_not_carry_across_sessions_or_keys() -> None:
    token = csrf_token(b"a" * 32, "session-one")
    assert csrf_valid(b"a" * 32, "session-one", token)
    assert not csrf_valid(b"a" * 32, "session-two", token)
    assert not csrf_valid(b"b" * 32, "session-one", token)
    assert not csrf_valid(b"a" * 32, "session-one", None)


@pytest.mark.parametrize("key", [None, "changeme", "secret", "short-but-not-default"])
def test_production_refuses_a_missing_default_or_short_key(key: str | None) -> None:
    with pytest.raises(InsecureSettings):
        create_app(Settings(env="production", secret_key=key))


def test_production_starts_with_a_real_key() -> None:
    app = create_app(Settings(env="production", secret_key="x" * 48))
    assert TestClient(app).get("/healthz").json()["status"] == "ok"


def test_development_without_a_key_warns_and_uses_a_random_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = create_app(Settings(secret_key=None))
    second = create_app(Settings(secret_key=None))
    assert first.state.signing_key != second.state.signing_key
    assert "random key" in caplog.text
