"""CSRF on every state-changing route, enumerated from the app itself (not a hand list).

For each route with a non-safe method, a signed-in person of a role the policy table lets through
posts without a CSRF token, and with the token of another session (in the header, and in the form
field): the answer is 403 `csrf-failed` and nothing is written (the audit log keeps its length,
and no new session, application or document appears).
"""

from __future__ import annotations

import re

from sqlalchemy import func, select

from tests.api.harness import Api
from vpnreg.registry.db import make_engine, make_session_factory
from vpnreg.registry.models import Application, AuditLogRow, Document, WebSession
from vpnreg.web.policy import (
    ALL_CALLERS,
    PUBLIC,
    SAFE_METHODS,
    access_for,
    allows,
    effective_routes,
)

#: Callers without a person behind them: a token is CSRF-exempt by design (no cookie is sent).
_MACHINES = frozenset({"gateway"})


def _state_changing_routes(api: Api) -> list[tuple[str, str, str]]:
    """(method, path, caller) for every enforced non-safe route and every caller allowed there
    that a browser could be (each role with a session, and the public with its anonymous one)."""
    found = []
    for entry in effective_routes(api.app):
        if not entry.enforced:
            continue
        for method in sorted(entry.methods - SAFE_METHODS):
            access = access_for(api.app.state.policy, method, entry.path)
            assert access is not None, f"{method} {entry.path} has no policy entry"
            found += [
                (method, entry.path, caller)
                for caller in ALL_CALLERS
                if caller not in _MACHINES and allows(access, None if caller == PUBLIC else caller)
            ]
    return sorted(found)


def _fill(path: str, application_id: int, document_id: int) -> str:
    values = {"application_id": str(application_id), "document_id": str(document_id)}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "1"), path)


def _counts(api: Api) -> tuple[int, int, int, int]:
    engine = make_engine(api.url)
    try:
        with make_session_factory(engine)() as session:
            return (
                session.scalar(select(func.count()).select_from(AuditLogRow)) or 0,
                session.scalar(select(func.count()).select_from(WebSession)) or 0,
                session.scalar(select(func.count()).select_from(Application)) or 0,
                session.scalar(select(func.count()).select_from(Document)) or 0,
            )
    finally:
        engine.dispose()


def _other_sessions_token(api: Api, caller: str) -> str:
    """A valid CSRF token, but of another person's session (the attacker's own)."""
    other = "reg2" if caller != "reg2" else "bina"
    token = str(api.client(other).headers["X-CSRF-Token"])
    assert token and token != api.client(caller).headers.get("X-CSRF-Token")
    return token


def test_the_enumeration_finds_the_portal_forms(api: Api) -> None:
    routes = _state_changing_routes(api)
    paths = {path for _, path, _ in routes}
    # A sample the portal is known to have, so an empty or broken enumeration fails here.
    for expected in ("/login", "/logout", "/apply", "/queue/{application_id}/decide"):
        assert expected in paths, sorted(paths)
    assert len(paths) >= 15
    # Every route a browser-borne caller may use is tried (token-only routes are CSRF-exempt).
    browser_borne = {
        (m, e.path)
        for e in effective_routes(api.app)
        if e.enforced
        for m in e.methods - SAFE_METHODS
        if (access_for(api.app.state.policy, m, e.path) or frozenset()) - _MACHINES
    }
    assert {(m, p) for m, p, _ in routes} == browser_borne
    assert len(routes) > len(paths)  # more than one caller on many routes


def test_every_state_changing_route_refuses_a_missing_or_foreign_csrf_token(api: Api) -> None:
    app_id = int(str(api.create("ali", ["198.51.100.176/28"])["id"]))
    pdf = b"%PDF-1.4\n%x\n%%EOF\n"
    uploaded = api.client("ali").post(
        f"/api/v1/applications/{app_id}/documents",
        files={"file": ("lease.pdf", pdf)},
        data={"kind": "k"},
    )
    assert uploaded.status_code == 201, uploaded.text
    document_id = int(uploaded.json()["id"])
    before = _counts(api)
    wrong: list[str] = []
    for method, path, caller in _state_changing_routes(api):
        url = _fill(path, app_id, document_id)
        client = api.client(caller)
        foreign = _other_sessions_token(api, caller) if caller != PUBLIC else "0" * 64
        if caller == PUBLIC:
            client.get("/login")  # an anonymous visitor has a cookie, hence a CSRF token
        attempts = {
            "no token": {"headers": {"X-CSRF-Token": ""}, "data": {"x": "1"}},
            "foreign header": {"headers": {"X-CSRF-Token": foreign}, "data": {"x": "1"}},
            "foreign field": {"headers": {"X-CSRF-Token": ""}, "data": {"csrf_token": foreign}},
        }
        for name, kwargs in attempts.items():
            response = client.request(method, url, follow_redirects=False, **kwargs)
            if response.status_code != 403 or '"code":"csrf-failed"' not in response.text:
                wrong.append(f"{method} {path} as {caller}, {name}: {response.status_code}")
    assert wrong == []
    assert _counts(api) == before
    # The sessions were not ended by the refused sign-outs: every person is still signed in.
    assert api.client("ali").get("/api/v1/me").json()["name"] == "ali"


def test_a_request_without_any_cookie_is_refused(api: Api) -> None:
    stranger = api.new_client()
    response = stranger.post("/login", data={"username": "ali", "password": "x"})
    assert response.status_code == 403
    assert response.json()["code"] == "csrf-failed"
