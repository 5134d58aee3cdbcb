"""Sign-up, the organisation profile, peer amendments and their approval, admin role changes and
deactivation, overlap findings, and the HTMX fragments (each flow also works without them)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.portal.forms import apply, csrf, move, sign_in, sign_out
from tests.portal.world import PASSWORD, PortalWorld
from vpnreg.registry import db
from vpnreg.registry.services import queries

HX = {"HX-Request": "true"}


def signup_form(**overrides: str) -> dict[str, str]:
    form = {
        "name": "Karachi Calls",
        "category": "call_centre",
        "registration_number": "0098765",
        "national_id": "",
        "username": "kc-admin",
        "password": "long enough password",
    }
    return {**form, **overrides}


def post_signup(client: TestClient, **overrides: str) -> object:
    token = csrf(client, "/signup")
    return client.post(
        "/signup", data={"csrf_token": token, **signup_form(**overrides)}, follow_redirects=False
    )


def audit_actions(world: PortalWorld, object_type: str) -> list[tuple[str, str]]:
    engine = db.make_engine(world.url)
    try:
        with db.make_session_factory(engine)() as session:
            page = queries.list_audit_events(session, object_type=object_type, limit=200)
            return [(e.actor, e.action) for e in page.items]
    finally:
        engine.dispose()


# --- sign-up and profile --------------------------------------------------------------------


def test_sign_up_creates_the_organisation_signs_in_and_lets_the_user_apply(
    client: TestClient, world: PortalWorld
) -> None:
    response = post_signup(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/apply?done=signed_up"
    page = client.get("/apply")
    assert page.status_code == 200
    assert "Karachi Calls" in page.text
    assert "Sign out (kc-admin)" in page.text
    assert ("web:signup", "create_organisation") in audit_actions(world, "organisation")
    assert ("web:signup", "create_user") in audit_actions(world, "user")


def test_a_freelancer_signs_up_with_a_national_id_kept_only_as_hash_and_last_digits(
    client: TestClient, world: PortalWorld
) -> None:
    response = post_signup(
        client,
        name="Sana Freelance",
        category="freelancer",
        registration_number="",
        national_id="35202-1234567-9",
        username="sana",
    )
    assert response.status_code == 303
    profile = client.get("/profile").text
    assert "ending in 5679" in profile
    assert "1234567" not in profile


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"registration_number": ""}, ("s-reg", "Registration number")),
        ({"category": "freelancer", "registration_number": ""}, ("s-nid", "National ID number")),
        ({"username": "ali"}, ("s-user", "Username")),
        ({"password": "short"}, ("s-pass", "Password")),
        ({"name": "Lahore Code Works"}, ("s-name", "Organisation name")),
        ({"category": "casino"}, ("s-category", "Category")),
    ],
    ids=[
        "no-registration",
        "freelancer-without-id",
        "taken-username",
        "short-password",
        "taken-name",
        "unknown-category",
    ],
)
def test_a_bad_sign_up_creates_nothing_and_names_the_field(
    client: TestClient, world: PortalWorld, overrides: dict[str, str], field: tuple[str, str]
) -> None:
    response = post_signup(client, **overrides)
    assert response.status_code == 422
    # The error summary names the field by its label and links to its input.
    input_id, label = field
    assert re.search(rf'<a href="#{input_id}"[^>]*>{label}: ', response.text), response.text
    assert "Karachi Calls" not in _organisation_names(world)


def _organisation_names(world: PortalWorld) -> list[str]:
    engine = db.make_engine(world.url)
    try:
        with db.make_session_factory(engine)() as session:
            return [o.name for o in queries.list_organisations(session, viewer=None)]
    finally:
        engine.dispose()


def test_sign_ups_are_throttled_per_address(client: TestClient, world: PortalWorld) -> None:
    for i in range(world.settings.signup_limit_per_hour):
        assert post_signup(client, password="x", username=f"u{i}").status_code == 422
    blocked = post_signup(client)
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0


def test_sign_up_without_the_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/signup")
    assert client.post("/signup", data=signup_form()).status_code == 403


def test_profile_edit_is_saved_and_audited(client: TestClient, world: PortalWorld) -> None:
    sign_in(client, "ali")
    token = csrf(client, "/profile")
    response = client.post(
        "/profile",
        data={"csrf_token": token, "name": "Lahore Code Works Ltd", "registration_number": "77"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    page = client.get("/profile").text
    assert "Lahore Code Works Ltd" in page
    assert "Organisation details saved." in client.get("/profile?done=profile_saved").text
    assert ("ali", "update_organisation") in audit_actions(world, "organisation")
    taken = client.post(
        "/profile", data={"csrf_token": token, "name": "Indus Bank", "registration_number": "1"}
    )
    assert taken.status_code == 422
    assert "already registered" in taken.text


# --- peers and amendments ---------------------------------------------------------------------


def test_peer_amendment_waits_for_the_regulator_then_is_in_force(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "ali")
    app_id = apply(client, world, "203.0.113.0/28")
    token = csrf(client, f"/applications/{app_id}")
    bad = client.post(
        f"/applications/{app_id}/peers",
        data={
            "csrf_token": token,
            "version": "2",
            "prefix": "203.0.113.0/28",
            "peers": "10.0.0.0/8",
        },
    )
    assert bad.status_code == 422
    ok = client.post(
        f"/applications/{app_id}/peers",
        data={
            "csrf_token": token,
            "version": "2",
            "prefix": "203.0.113.0/28",
            "peers": "198.51.100.10/32",
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303
    page = client.get(f"/applications/{app_id}").text
    assert 'id="pending-amendments"' in page
    sign_out(client)

    sign_in(client, "reg1")
    queue = client.get("/queue").text
    assert queue.count('id="amendment-queue"') == 1
    assert "<title>Review queue · vpnreg</title>" in queue
    match = re.search(r"/queue/amendments/(\d+)/approve", queue)
    assert match is not None
    token = csrf(client, "/queue")
    stale = client.post(
        f"/queue/amendments/{match.group(1)}/approve", data={"csrf_token": token, "version": "2"}
    )
    assert stale.status_code == 412
    done = client.post(
        f"/queue/amendments/{match.group(1)}/approve",
        data={"csrf_token": token, "version": "3", "application_id": str(app_id)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    review = client.get(f"/queue/{app_id}").text
    assert "198.51.100.10/32" in review
    assert "Peer changes requested" not in review
    assert 'id="amendment-queue"' not in client.get("/queue").text


def test_only_the_regulator_may_approve_amendments(client: TestClient) -> None:
    sign_in(client, "noc")
    token = csrf(client, "/queue")
    response = client.post(
        "/queue/amendments/1/approve", data={"csrf_token": token, "version": "1"}
    )
    assert response.status_code == 403


# --- findings ---------------------------------------------------------------------------------


def test_findings_name_every_overlapping_claim_including_smaller_ones_inside(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "ali")
    small = apply(client, world, "203.0.113.8/29")
    big = apply(client, world, "203.0.113.0/24", "198.51.100.0/28")
    sign_out(client)
    move(client, "noc", small, "verify", 2)
    sign_in(client, "noc")
    page = client.get(f"/queue/{big}").text
    findings = re.search(r'<ul class="findings" id="findings">(.*?)</ul>', page, re.S)
    assert findings is not None
    text = findings.group(1)
    assert "contains 203.0.113.8/29" in text
    assert "in review, isp verified" in text
    assert "198.51.100.0/28</span>: no overlap" in text


# --- admin ------------------------------------------------------------------------------------


def active_form_user_id(page: str, username: str) -> str:
    """The user id in the deactivate form of `username` on the admin users page."""
    forms = re.findall(r'action="/admin/users/(\d+)/active"(.*?)</form>', page, re.S)
    ids = [uid for uid, body in forms if f'aria-label="Deactivate {username}"' in body]
    assert len(ids) == 1, ids
    return str(ids[0])


def test_admin_deactivates_and_reactivates_a_user_and_changes_a_role(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "admin")
    page = client.get("/admin/users").text
    user_id = active_form_user_id(page, "reg2")
    token = csrf(client, "/admin/users")
    off = client.post(
        f"/admin/users/{user_id}/active",
        data={"csrf_token": token, "active": "no"},
        follow_redirects=False,
    )
    assert off.status_code == 303
    other = TestClient(client.app)
    login_token = csrf(other, "/login")
    refused = other.post(
        "/login", data={"username": "reg2", "password": PASSWORD, "csrf_token": login_token}
    )
    assert refused.status_code == 401
    on = client.post(
        f"/admin/users/{user_id}/active",
        data={"csrf_token": token, "active": "yes"},
        follow_redirects=False,
    )
    assert on.status_code == 303
    role = client.post(
        f"/admin/users/{user_id}/role",
        data={"csrf_token": token, "role": "auditor", "link": ""},
        follow_redirects=False,
    )
    assert role.status_code == 303
    needs_link = client.post(
        f"/admin/users/{user_id}/role", data={"csrf_token": token, "role": "isp", "link": ""}
    )
    assert needs_link.status_code == 422
    actions = audit_actions(world, "user")
    for action in ("deactivate_user", "activate_user", "set_user_role"):
        assert ("admin", action) in actions


def test_an_admin_cannot_deactivate_itself(client: TestClient) -> None:
    sign_in(client, "admin")
    page = client.get("/admin/users").text
    user_id = active_form_user_id(page, "admin")
    response = client.post(
        f"/admin/users/{user_id}/active",
        data={"csrf_token": csrf(client, "/admin/users"), "active": "no"},
    )
    assert response.status_code == 403
    assert client.get("/admin/users").status_code == 200


# --- HTMX fragments ---------------------------------------------------------------------------


def test_lookup_answers_with_a_fragment_for_htmx_and_a_page_without(client: TestClient) -> None:
    fragment = client.get("/lookup", params={"ip": "192.0.2.9"}, headers=HX)
    assert fragment.status_code == 200
    assert "Not registered" in fragment.text
    assert "<html" not in fragment.text
    bad = client.get("/lookup", params={"ip": "nope"}, headers=HX)
    assert bad.status_code == 200
    assert 'role="alert"' in bad.text
    page = client.get("/lookup", params={"ip": "192.0.2.9"})
    assert "<html" in page.text


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("203.0.113.0/28", "valid public prefix"),
        ("10.0.0.0/8", "✗"),
        ("203.0.113.1/28", "✗"),
        ("nonsense", "✗"),
    ],
    ids=["valid", "private", "host-bits", "malformed"],
)
def test_prefix_check_fragment_gives_the_reason(
    client: TestClient, prefix: str, expected: str
) -> None:
    sign_in(client, "ali")
    response = client.get("/apply/check-prefix", params={"prefix": prefix}, headers=HX)
    assert response.status_code == 200
    assert expected in response.text


def test_prefix_check_flags_a_prefix_claimed_by_another_application(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "ali")
    apply(client, world, "203.0.113.0/28")
    sign_out(client)
    sign_in(client, "bina")
    response = client.get("/apply/check-prefix", params={"prefix": "203.0.113.0/24"})
    assert "overlaps 203.0.113.0/28" in response.text


def test_add_rows_fragment_numbers_on_and_replaces_the_button(client: TestClient) -> None:
    sign_in(client, "ali")
    response = client.get("/apply/rows", params={"shown": 3}, headers=HX)
    assert 'id="prefix-4"' in response.text and 'id="prefix-5"' in response.text
    assert 'hx-get="/apply/rows?shown=5"' in response.text
    assert 'hx-swap-oob="true"' in response.text


def test_add_rows_without_javascript_keeps_typed_values(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "ali")
    token = csrf(client, "/apply")
    response = client.post(
        "/apply",
        data={
            "csrf_token": token,
            "isp_id": str(world.isp_id),
            "prefix": ["203.0.113.0/28", "", ""],
            "peers": ["", "", ""],
            "more_rows": "5",
        },
    )
    assert response.status_code == 200
    assert 'id="prefix-5"' in response.text
    assert 'value="203.0.113.0/28"' in response.text


def test_the_apply_forms_first_submit_button_submits(client: TestClient) -> None:
    """Pressing Enter in a field clicks the form's first submit button (HTML's implicit
    submission), so that must be "Continue" (to check your answers), not "Add more prefix
    rows"."""
    sign_in(client, "ali")
    page = client.get("/apply").text
    form = page[page.index('id="apply-form"') :]
    first = re.search(r'<button type="submit"([^>]*)>([^<]+)</button>', form)
    assert first is not None
    assert first.group(2) == "Continue" and 'value="check"' in first.group(1)


def test_pages_carry_the_csrf_token_for_htmx_posts(client: TestClient) -> None:
    sign_in(client, "ali")
    page = client.get("/applications").text
    token = csrf(client, "/applications")
    assert f'hx-headers=\'{{"X-CSRF-Token": "{token}"}}\'' in page
    assert f'<meta name="csrf-token" content="{token}">' in page
