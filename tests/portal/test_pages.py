"""Portal pages through TestClient: public answers, CSV row errors, stale pages, bulk confirmation,
CSRF on every form."""

from __future__ import annotations

import datetime as dt
import re

from fastapi.testclient import TestClient
from sqlalchemy import event

from tests.portal.forms import apply, csrf, sign_in
from tests.portal.world import PortalWorld
from vpnreg.clock import FrozenClock
from vpnreg.web.portal.prefix_forms import rows_from_csv


def test_lookup_of_an_unregistered_address_says_not_registered(client: TestClient) -> None:
    response = client.get("/lookup", params={"ip": "192.0.2.9"})
    assert response.status_code == 200
    assert "Not registered" in response.text


def test_lookup_of_garbage_is_a_422_page_with_the_problem(client: TestClient) -> None:
    response = client.get("/lookup", params={"ip": "not-an-ip"})
    assert response.status_code == 422
    assert 'role="alert"' in response.text


def test_status_of_an_unknown_tracking_number_is_404(client: TestClient) -> None:
    response = client.get("/status", params={"tracking_number": "VPN-2026-ABCD-EFGH"})
    assert response.status_code == 404
    assert "VPN-2026-ABCD-EFGH" in response.text


def test_status_page_shows_state_but_not_the_organisation(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "ali")
    app_id = apply(client, world, "203.0.113.0/28")
    page = client.get(f"/applications/{app_id}").text
    tracking = re.search(r"VPN-\d{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", page)
    assert tracking is not None
    public = TestClient(client.app).get("/status", params={"tracking_number": tracking.group(0)})
    assert public.status_code == 200
    assert "Submitted by the applicant" in public.text
    assert "Lahore Code Works" not in public.text


def test_status_answers_only_a_full_tracking_number(client: TestClient, world: PortalWorld) -> None:
    sign_in(client, "ali")
    app_id = apply(client, world, "203.0.113.0/28")
    found = re.search(
        r"VPN-\d{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", client.get(f"/applications/{app_id}").text
    )
    assert found is not None
    tracking = found.group(0)
    public = TestClient(client.app)
    assert public.get("/status", params={"tracking_number": tracking.lower()}).status_code == 200
    for partial in (tracking[:-1], tracking[:9], tracking[:14], "%"):
        response = public.get("/status", params={"tracking_number": partial})
        assert response.status_code == 404, partial
        assert "Submitted by the applicant" not in response.text


def test_csv_errors_name_the_line_of_the_file(client: TestClient, world: PortalWorld) -> None:
    sign_in(client, "ali")
    token = csrf(client, "/apply")
    csv_text = "prefix,peers\n203.0.113.0/28,\n10.0.0.0/8,\n198.51.100.0/24,not-a-peer\n"
    response = client.post(
        "/apply",
        data={"csrf_token": token, "isp_id": str(world.isp_id), "intent": "submit"},
        files={"prefixes_csv": ("prefixes.csv", csv_text.encode(), "text/csv")},
    )
    assert response.status_code == 422
    assert "CSV line 3" in response.text
    assert "CSV line 4, peers" in response.text
    assert "CSV line 2" not in response.text


def test_csv_parser_skips_header_and_blank_lines_and_reports_extra_columns() -> None:
    data = b"prefix,peers\n\n192.0.2.0/28,198.51.100.1/32 ; 2001:db8::/48\n1,2,3\n"
    entries, errors = rows_from_csv(data)
    assert [(e.source, e.prefix, e.peers) for e in entries] == [
        ("CSV line 3", "192.0.2.0/28", ("198.51.100.1/32", "2001:db8::/48"))
    ]
    assert [e.field for e in errors] == ["CSV line 4"]


def test_a_post_without_the_csrf_token_is_refused(client: TestClient, world: PortalWorld) -> None:
    sign_in(client, "ali")
    response = client.post(
        "/apply", data={"isp_id": str(world.isp_id), "prefix": ["203.0.113.0/28"]}
    )
    assert response.status_code == 403


def test_a_decision_on_a_stale_page_is_refused_with_a_clear_error(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "ali")
    app_id = apply(client, world, "203.0.113.0/28")
    client.post("/logout", data={"csrf_token": csrf(client, "/applications")})
    sign_in(client, "noc")
    token = csrf(client, f"/queue/{app_id}")
    stale = client.post(
        f"/queue/{app_id}/decide",
        data={"csrf_token": token, "action": "verify", "version": "1"},
    )
    assert stale.status_code == 412  # a stale version is 412 everywhere (API and portal)
    assert "changed meanwhile" in stale.text
    fresh = client.post(
        f"/queue/{app_id}/decide",
        data={"csrf_token": token, "action": "verify", "version": "2"},
        follow_redirects=False,
    )
    assert fresh.status_code == 303


def test_rejection_needs_a_reason(client: TestClient, world: PortalWorld) -> None:
    sign_in(client, "ali")
    app_id = apply(client, world, "203.0.113.0/28")
    client.post("/logout", data={"csrf_token": csrf(client, "/applications")})
    sign_in(client, "noc")
    token = csrf(client, f"/queue/{app_id}")
    response = client.post(
        f"/queue/{app_id}/decide",
        data={"csrf_token": token, "action": "reject", "version": "2", "reason_code": "policy"},
    )
    assert response.status_code == 422
    assert "reject needs a reason" in response.text


def test_bulk_decisions_show_a_confirmation_before_acting(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "ali")
    first = apply(client, world, "203.0.113.0/28")
    second = apply(client, world, "198.51.100.0/28")
    client.post("/logout", data={"csrf_token": csrf(client, "/applications")})
    sign_in(client, "noc")
    token = csrf(client, "/queue")
    data = {"csrf_token": token, "action": "verify", "item": [f"{first}:2", f"{second}:2"]}
    confirm = client.post("/queue/bulk", data=data)
    assert confirm.status_code == 200
    assert 'name="confirm" value="yes"' in confirm.text
    assert "203.0.113.0/28" in client.get("/queue").text
    done = client.post("/queue/bulk", data={**data, "confirm": "yes"})
    assert done.text.count("<td>verified</td>") == 2
    assert "203.0.113.0/28" not in client.get("/queue").text


def test_queue_shows_the_age_of_each_item(
    client: TestClient, world: PortalWorld, clock: FrozenClock
) -> None:
    sign_in(client, "ali")
    apply(client, world, "203.0.113.0/28")
    client.post("/logout", data={"csrf_token": csrf(client, "/applications")})
    clock.advance(dt.timedelta(days=3, hours=2))
    sign_in(client, "noc")
    assert re.search(r"<td>3 d</td>", client.get("/queue").text)


def test_admin_creates_a_user_and_sees_it_listed(client: TestClient, world: PortalWorld) -> None:
    sign_in(client, "admin")
    token = csrf(client, "/admin/users")
    response = client.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "username": "noc2",
            "password": "another long password",
            "role": "isp",
            "isp_id": str(world.isp_id),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert ">noc2<" in client.get("/admin/users").text
    missing_link = client.post(
        "/admin/users",
        data={"csrf_token": token, "username": "x1", "password": "p" * 20, "role": "isp"},
    )
    assert missing_link.status_code == 422


def test_an_applicant_may_not_open_the_admin_page(client: TestClient) -> None:
    sign_in(client, "ali")
    assert client.get("/admin/users").status_code == 403


def test_public_pages_know_who_is_signed_in_and_public_api_reads_skip_the_session(
    client: TestClient,
) -> None:
    database = client.app.state.database  # type: ignore[attr-defined]
    database.session().__enter__().close()  # the engine exists from here on
    statements: list[str] = []
    event.listen(database._engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    def statements_for(path: str, **headers: str) -> int:
        statements.clear()
        response = client.get(path, headers=headers)
        assert response.status_code in (200, 404), response.text
        return len(statements)

    statements_for("/api/v1/ip/192.0.2.9")  # builds the lookup index of the feed's state
    anonymous = statements_for("/api/v1/ip/192.0.2.9")
    # answered from the index (ADR 0014): no statement at all
    assert anonymous == 0
    assert 'href="/login">Sign in' in client.get("/").text
    sign_in(client, "ali")
    home = client.get("/").text
    assert "Sign out (ali)" in home and 'href="/login">Sign in' not in home
    assert 'href="/apply">New application' in home
    assert "Sign out (ali)" in client.get("/lookup", params={"ip": "192.0.2.9"}).text
    assert statements_for("/api/v1/ip/192.0.2.9") == anonymous
    fragment = client.get("/lookup", params={"ip": "192.0.2.9"}, headers={"HX-Request": "true"})
    assert "Not registered" in fragment.text and "Sign out" not in fragment.text
    assert statements_for("/lookup?ip=192.0.2.9", **{"HX-Request": "true"}) == anonymous
    bad_token = client.get("/api/v1/ip/192.0.2.9", headers={"Authorization": "Bearer nope-nope"})
    assert bad_token.status_code == 401
