"""The authorization matrix: every route of create_app, called as every role, against the table.

Routes are enumerated from the app itself, so a route added by any module without a policy
entry fails here. A refusal by the table is a problem whose code is one of POLICY_CODES (or,
for a page, a redirect to sign in); anything else means the table let the caller through.
"""

from __future__ import annotations

import re

import pytest

from tests.api.harness import Api, relogin
from vpnreg.web.policy import (
    ALL_CALLERS,
    OVERSIGHT,
    READERS,
    access_for,
    allows,
    effective_routes,
)
from vpnreg.web.problems import POLICY_CODES


def _fill(path: str, application_id: int) -> str:
    values = {"application_id": str(application_id), "address": "192.0.2.1"}
    if path == "/static":
        return "/static/portal.css"
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), "1"), path)


def _refused(response_status: int, body: str, headers: dict[str, str]) -> bool:
    if response_status in (301, 302, 303, 307) and headers.get("location", "").startswith("/login"):
        return True
    if response_status not in (401, 403):
        return False
    return any(f'"code":"{code}"' in body for code in POLICY_CODES)


def _routes(api: Api) -> list[tuple[str, str, bool]]:
    keys = {
        (method, entry.path, entry.enforced)
        for entry in effective_routes(api.app)
        for method in entry.methods
    }
    # Sign-out last: it ends the caller's session.
    return sorted(keys, key=lambda k: (k[1] == "/logout", k[1], k[0]))


def test_every_route_has_a_policy_entry(api: Api) -> None:
    missing = [
        f"{m} {p}" for m, p, _ in _routes(api) if access_for(api.app.state.policy, m, p) is None
    ]
    assert missing == []
    assert len(_routes(api)) > 30


@pytest.mark.slow
def test_every_route_as_every_role_matches_the_table(api: Api) -> None:
    app_id = int(str(api.create("ali", ["198.51.100.240/28"])["id"]))
    mismatches = []
    for method, path, enforced in _routes(api):
        access = access_for(api.app.state.policy, method, path)
        url = _fill(path, app_id)
        for caller in ALL_CALLERS:
            response = api.client(caller).request(
                method, url, follow_redirects=False, headers={"Accept": "text/html"}
            )
            refused = _refused(response.status_code, response.text, dict(response.headers))
            expected = allows(access, None if caller == "public" else caller)
            if not enforced:
                # Static files and the OpenAPI pages bypass the dependency: they must be public.
                expected_ok = response.status_code == 200
                if not (expected and expected_ok):
                    mismatches.append(f"{method} {path} as {caller}: {response.status_code}")
                continue
            if refused == expected:
                mismatches.append(
                    f"{method} {path} as {caller}: table says "
                    f"{'allow' if expected else 'deny'}, got {response.status_code}"
                )
    relogin(api)
    assert mismatches == []


def test_the_table_holds_the_spec_rules(api: Api) -> None:
    policy = api.app.state.policy
    base = "/api/v1/applications/{application_id}"
    rules = {
        ("GET", "/api/v1/audit/events"): {"auditor"},
        ("POST", base + "/approve"): {"regulator"},
        ("POST", base + "/verify"): {"isp"},
        ("POST", base + "/endorse"): {"sector_body"},
        ("POST", base + "/submit"): {"applicant"},
        # Documents: everyone who reads applications, each within its scope (issue 15 item 2).
        ("GET", base + "/documents/{document_id}"): set(READERS),
        ("GET", "/applications/{application_id}/documents/{document_id}"): set(READERS),
        # Bindings: the ISP's own users only (issue 17); which ISP is checked inside.
        ("PUT", "/api/v1/isps/{isp_id}/bindings"): {"isp"},
        # Gateway reports: gateway tokens only; the gateway list: the oversight roles (issue 19).
        ("POST", "/api/v1/gateway-reports"): {"gateway"},
        ("GET", "/api/v1/gateways"): set(OVERSIGHT),
    }
    for (method, path), roles in rules.items():
        allowed = {c for c in ALL_CALLERS if allows(access_for(policy, method, path), c)}
        assert allowed == roles, (method, path)
    assert allows(access_for(policy, "GET", "/api/v1/ip/{address}"), None)
    for method, path, _ in _routes(api):
        if path.startswith("/feed/v1/"):
            allowed = {c for c in ALL_CALLERS if allows(access_for(policy, method, path), c)}
            assert allowed == {"gateway"}, path
    auditor_denied = [
        f"{m} {p}"
        for m, p, _ in _routes(api)
        if m == "GET"
        and p.startswith("/api/v1/")
        and not allows(access_for(policy, m, p), "auditor")
    ]
    assert auditor_denied == []


@pytest.mark.parametrize(
    ("caller", "action", "expected"),
    [
        ("bina", "GET", 404),
        ("ptcl-noc", "GET", 404),
        ("ali", "GET", 200),
        ("noc", "GET", 200),
        ("bina", "withdraw", 404),
        ("ptcl-noc", "verify", 404),
        ("ali", "withdraw", 200),
    ],
    ids=[
        "cross-org-read",
        "cross-isp-read",
        "own-org-read",
        "named-isp-read",
        "cross-org-withdraw",
        "cross-isp-verify",
        "own-withdraw",
    ],
)
def test_object_level_cases(api: Api, caller: str, action: str, expected: int) -> None:
    app_id = api.create("ali", ["198.51.100.224/28"])["id"]
    if action == "verify":
        api.step("ali", app_id, "submit")
    client = api.client(caller)
    url = f"/api/v1/applications/{app_id}"
    if action == "GET":
        response = client.get(url)
    else:
        etag = api.client("ali").get(url).headers["ETag"]
        response = client.post(f"{url}/{action}", headers={"If-Match": etag})
    assert response.status_code == expected, response.text


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("ali", 200),
        ("noc", 200),
        ("pasha", 200),
        ("reg1", 200),
        ("auditor", 200),
        ("bina", 404),
        ("ptcl-noc", 404),
        ("public", 401),
    ],
    ids=lambda v: str(v),
)
def test_document_download_is_scoped(api: Api, caller: str, expected: int) -> None:
    app_id = api.create("ali", ["198.51.100.208/28"])["id"]
    url = f"/api/v1/applications/{app_id}/documents"
    pdf = b"%PDF-1.4\n%lease\n%%EOF\n"
    uploaded = api.client("ali").post(url, files={"file": ("lease.pdf", pdf)}, data={"kind": "k"})
    assert uploaded.status_code == 201, uploaded.text
    api.step("ali", app_id, "submit")
    client = api.client(caller)
    response = client.get(f"{url}/{uploaded.json()['id']}")
    assert response.status_code == expected, response.text
    if expected == 200:
        assert response.content == pdf
        assert response.headers["content-disposition"] == 'attachment; filename="lease.pdf"'


@pytest.mark.parametrize(
    ("caller", "own_isp", "expected"),
    [
        ("noc", True, 200),
        ("ptcl-noc", True, 403),
        ("noc", False, 403),
        ("ali", True, 403),
        ("reg1", True, 403),
        ("admin", True, 403),
        ("gateway", True, 403),
        ("public", True, 401),
    ],
    ids=[
        "own-isp",
        "other-isps-user",
        "isp-reports-for-another",
        "applicant",
        "regulator",
        "admin",
        "gateway",
        "public",
    ],
)
def test_bindings_are_reported_by_that_isps_users_only(
    api: Api, caller: str, own_isp: bool, expected: int
) -> None:
    isp = api.world.isp if own_isp else api.world.other_isp
    event = {
        "event": "start",
        "subscriber_id": f"M-{caller}-{own_isp}",
        "session_id": "m",
        "address": "198.51.100.250",
        "ports": [0, 0],
    }
    response = api.client(caller).put(f"/api/v1/isps/{isp}/bindings", json={"events": [event]})
    assert response.status_code == expected, response.text
    if expected == 200:
        assert response.json() == {"results": [{"status": "stored"}]}
