"""Signing in and out: CSRF on the form, throttling by username and address, session cookies."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest

from tests.api.harness import Api, build_api, database_url, login
from tests.registry.conftest import PASSWORD


@pytest.fixture(scope="module")
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    urls = database_url("sqlite", tmp_path_factory, request)
    built = build_api(next(urls), tmp_path_factory.mktemp("data"))
    try:
        yield built
    finally:
        built.app.state.database.dispose()
        next(urls, None)


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page)
    assert match is not None
    return match.group(1)


def test_login_form_without_csrf_is_403(api: Api) -> None:
    client = api.new_client()
    client.get("/login")
    response = client.post("/login", data={"username": "ali", "password": PASSWORD})
    assert response.status_code == 403
    assert response.json()["code"] == "csrf-failed"


def test_login_sets_a_new_httponly_session_cookie_and_logout_ends_it(api: Api) -> None:
    client = api.new_client()
    anonymous = client.get("/login")
    before = anonymous.cookies.get("vpnreg_session")
    response = client.post(
        "/login",
        data={
            "username": "ali",
            "password": PASSWORD,
            "csrf_token": _csrf(anonymous.text),
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert client.cookies.get("vpnreg_session") != before
    me = client.get("/api/v1/me").json()
    assert me["name"] == "ali"
    out = client.post("/logout", data={"csrf_token": me["csrf_token"]}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/api/v1/me").json()["role"] is None


def test_five_failures_throttle_the_sixth_until_the_window_passes(api: Api) -> None:
    client = api.new_client()
    page = client.get("/login")
    token = _csrf(page.text)
    for _ in range(5):
        wrong = client.post(
            "/login", data={"username": "bina", "password": "nope", "csrf_token": token}
        )
        assert wrong.status_code == 401
    blocked = client.post(
        "/login", data={"username": "bina", "password": PASSWORD, "csrf_token": token}
    )
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 15 * 60
    # Another username from the same address is not held back.
    other = api.new_client()
    login(other, "noc")
    api.clock.advance(dt.timedelta(minutes=15, seconds=1))
    ok = client.post(
        "/login",
        data={"username": "bina", "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert ok.status_code == 303


def test_a_page_needing_sign_in_redirects_a_browser_and_answers_401_to_the_api(
    api: Api,
) -> None:
    client = api.new_client()
    page = client.get(
        "/api/v1/applications", headers={"Accept": "text/html"}, follow_redirects=False
    )
    assert page.status_code == 401
    assert page.headers["content-type"] == "application/problem+json"
