"""Signing in and out: CSRF on the form, throttling by username and address, session cookies
(renewed at sign-in, their flags, ended on the server at sign-out)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from tests.api.harness import Api, login
from tests.registry.conftest import PASSWORD
from vpnreg.feedkeys import generate_keypair
from vpnreg.registry.db import upgrade
from vpnreg.settings import Settings
from vpnreg.web.app import create_app


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


def _session_cookie_header(response: httpx.Response) -> str:
    cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    found = [c for c in cookies if c.startswith("vpnreg_session=")]
    assert len(found) == 1, cookies
    return found[0].lower()


def test_a_cookie_planted_before_sign_in_is_never_promoted(api: Api) -> None:
    planted = "planted-by-an-attacker-" + "a" * 20
    victim = api.new_client()
    # Set for the host the app answers as, as a sibling subdomain or an injected header would.
    victim.cookies.set("vpnreg_session", planted, domain="testserver.local")
    page = victim.get("/login")
    # The planted value is a well-formed cookie, so the form's CSRF token is bound to it...
    assert "vpnreg_session" not in page.headers.get("set-cookie", "")
    response = victim.post(
        "/login",
        data={"username": "ali", "password": PASSWORD, "csrf_token": _csrf(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    # ...but signing in issues a new session id; the planted one stays anonymous.
    renewed = victim.cookies.get("vpnreg_session")
    assert renewed is not None and renewed != planted
    assert victim.get("/api/v1/me").json()["name"] == "ali"
    attacker = api.new_client()
    attacker.cookies.set("vpnreg_session", planted)
    assert attacker.get("/api/v1/me").json()["role"] is None
    assert attacker.get("/api/v1/applications").status_code == 401


def test_every_session_cookie_is_httponly_and_samesite_lax_and_not_secure_in_development(
    api: Api,
) -> None:
    client = api.new_client()
    anonymous = client.get("/login")
    signed_in = client.post(
        "/login",
        data={"username": "ali", "password": PASSWORD, "csrf_token": _csrf(anonymous.text)},
        follow_redirects=False,
    )
    out = client.post(
        "/logout",
        data={"csrf_token": client.get("/api/v1/me").json()["csrf_token"]},
        follow_redirects=False,
    )
    for response in (anonymous, signed_in, out):
        cookie = _session_cookie_header(response)
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
        # Development serves plain http: a Secure cookie would never come back.
        assert "secure" not in cookie


def test_the_session_cookie_is_secure_in_production(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    generate_keypair(tmp_path)
    settings = Settings(
        env="production",
        secret_key="p" * 40,
        id_hash_key="production-id-hash-key-" + "h" * 20,
        database_url=url,
        data_dir=tmp_path,
        feed_key=tmp_path / "feed.key",
    )
    app = create_app(settings)
    try:
        with TestClient(app, base_url="https://registry.example") as client:
            cookie = _session_cookie_header(client.get("/login"))
    finally:
        app.state.database.dispose()
    assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie


def test_sign_out_ends_the_session_on_the_server(api: Api) -> None:
    client = api.new_client()
    login(client, "ali")
    old = client.cookies.get("vpnreg_session")
    assert old is not None
    out = client.post("/logout", follow_redirects=False)
    assert out.status_code == 303
    assert client.cookies.get("vpnreg_session") not in (None, old)
    # Replaying the old cookie (say, copied before sign-out) no longer signs anybody in.
    replay = api.new_client()
    replay.cookies.set("vpnreg_session", old)
    assert replay.get("/api/v1/me").json()["role"] is None
    assert replay.get("/api/v1/applications").status_code == 401
    page = replay.get("/applications", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
