"""The app factory: public pages, error pages for people, and the production guard on the secret
key."""

from __future__ import annotations

import html
import json
import re

import pytest
from fastapi.testclient import TestClient

from vpnreg.settings import Settings
from vpnreg.web.app import SESSION_COOKIE, create_app
from vpnreg.web.error_pages import advice_for
from vpnreg.web.limits import MAX_BODY_BYTES
from vpnreg.web.policy import EVERYONE, allow, build_policy
from vpnreg.web.problems import Problem
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


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def _app_raising(status: int, code: str) -> TestClient:
    """The app with one extra public page that fails with `status`."""
    app = create_app(Settings(secret_key="k" * 40))

    def fail() -> None:
        if status == 500:
            raise RuntimeError("a bug with secret insides")
        raise Problem(status, code, f"the details of {code}")

    app.add_api_route("/failing", fail, methods=["GET"], dependencies=[allow(EVERYONE)])
    app.state.policy = build_policy(app)
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (403, "forbidden"),
        (404, "not-found"),
        (409, "state-conflict"),
        (412, "stale-version"),
        (413, "body-too-large"),
        (422, "validation-failed"),
        (429, "too-many-requests"),
        (500, "server-error"),
        (503, "busy"),
    ],
)
def test_a_browser_gets_an_error_page_saying_what_happened_and_what_to_do(
    status: int, code: str
) -> None:
    client = _app_raising(status, code)
    page = client.get("/failing", headers=BROWSER | {"Referer": "http://testserver/stats"})
    assert page.status_code == status
    assert page.headers["content-type"].startswith("text/html")
    heading, next_step = advice_for(status)
    assert f"<h1>{heading}</h1>" in page.text
    assert next_step in html.unescape(page.text)
    assert 'href="/stats">Back</a>' in page.text
    assert 'href="/">Home page</a>' in page.text
    assert 'class="skip-link" href="#main"' in page.text
    problem = re.search(r"data-problem='([^']*)'", page.text)
    assert problem is not None
    assert json.loads(problem.group(1))["code"] == code
    assert "secret insides" not in page.text
    # The same failure asked for by a machine stays problem+json.
    machine = client.get("/failing", headers={"Accept": "application/json"})
    assert machine.headers["content-type"] == "application/problem+json"
    assert machine.json()["code"] == code


def test_an_unknown_page_is_the_html_404_and_an_unknown_api_path_stays_json() -> None:
    client = TestClient(create_app(Settings(secret_key="k" * 40)))
    page = client.get("/nonexistent", headers=BROWSER)
    assert page.status_code == 404
    assert "<h1>Page not found</h1>" in page.text
    for path in ("/api/v1/nonexistent", "/feed/v1/nonexistent"):
        api = client.get(path, headers=BROWSER)
        assert api.status_code in (401, 404)
        assert api.headers["content-type"] == "application/problem+json"
    fragment = client.get("/nonexistent", headers=BROWSER | {"HX-Request": "true"})
    assert fragment.headers["content-type"] == "application/problem+json"


def test_a_401_page_offers_to_sign_in_and_come_back() -> None:
    page = _app_raising(401, "token-expired").get("/failing?x=1", headers=BROWSER)
    assert page.status_code == 401
    assert 'href="/login?next=/failing%3Fx%3D1"' in page.text


def test_a_too_large_upload_from_a_browser_gets_the_413_page() -> None:
    client = TestClient(create_app(Settings(secret_key="k" * 40)))
    page = client.post(
        "/apply",
        headers=BROWSER | {"Content-Type": "application/x-www-form-urlencoded"},
        content=b"x" * (MAX_BODY_BYTES + 1),
    )
    assert page.status_code == 413
    assert "<h1>The file is too large</h1>" in page.text
    api = client.post("/api/v1/applications", json={"x": "x" * MAX_BODY_BYTES})
    assert api.status_code == 413
    assert api.headers["content-type"] == "application/problem+json"


def test_the_home_page_and_the_navigation_link_the_public_status_page() -> None:
    page = TestClient(create_app(Settings(secret_key="k" * 40))).get("/")
    assert page.text.count('href="/status"') == 2
