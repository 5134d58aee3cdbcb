"""The JSON API over both backends: the review flow, ETag/If-Match, problems, scopes, outbox."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.api.harness import Api
from vpnreg.registry.services.outbox import list_outbox
from vpnreg.registry.services.unit_of_work import Database

PROBLEM = "application/problem+json"


def _outbox(api: Api, app_id: object) -> list[str]:
    database = Database(api.url)
    try:
        with database.session() as session:
            return [m.recipient for m in list_outbox(session, application_id=int(str(app_id)))]
    finally:
        database.dispose()


def test_full_review_flow_reaches_active_and_the_public_lookup(api: Api) -> None:
    created = api.create("ali", ["203.0.113.0/28"])
    assert created["state"] == "draft"
    app_id = created["id"]
    assert api.step("ali", app_id, "submit")["state"] == "submitted"
    assert api.step("noc", app_id, "verify")["state"] == "isp_verified"
    assert api.step("pasha", app_id, "endorse")["state"] == "sector_endorsed"
    approved = api.step("reg1", app_id, "approve")
    assert approved["state"] == "active"
    assert approved["valid_until"] is not None

    answer = api.client("public").get("/api/v1/ip/203.0.113.5")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/rdap+json")
    body = answer.json()
    assert body["objectClassName"] == "ip network"
    assert body["startAddress"] == "203.0.113.0"
    assert body["endAddress"] == "203.0.113.15"
    assert body["cidr0_cidrs"] == [{"v4prefix": "203.0.113.0", "length": 28}]
    assert body["vpnreg_category"] == "software_house"
    assert body["vpnreg_validUntil"] == approved["valid_until"]
    text = answer.text
    assert "Lahore Code Works" not in text and "organisation" not in text

    # Every step queued notices: the organisation's user always, the next handler too.
    recipients = _outbox(api, app_id)
    assert "ali" in recipients and "noc" in recipients and "reg1" in recipients
    timeline = api.client("ali").get(f"/api/v1/applications/{app_id}/timeline").json()
    assert [t["action"] for t in timeline][:4] == ["submit", "verify", "endorse", "approve"]


def test_transition_without_if_match_is_428_and_stale_is_412_and_nothing_changes(
    api: Api,
) -> None:
    app_id = api.create("ali", ["203.0.113.32/28"])["id"]
    client = api.client("ali")
    missing = client.post(f"/api/v1/applications/{app_id}/submit")
    assert missing.status_code == 428
    assert missing.headers["content-type"] == PROBLEM
    assert missing.json()["code"] == "if-match-required"
    stale = client.post(f"/api/v1/applications/{app_id}/submit", headers={"If-Match": '"7"'})
    assert stale.status_code == 412
    assert stale.json()["current_version"] == 1
    after = client.get(f"/api/v1/applications/{app_id}")
    assert after.json()["state"] == "draft"
    assert after.headers["ETag"] == '"1"'
    ok = client.post(f"/api/v1/applications/{app_id}/submit", headers={"If-Match": '"1"'})
    assert ok.status_code == 200
    assert ok.headers["ETag"] == '"2"'


def test_invalid_prefixes_name_the_field_and_the_reason_code(api: Api) -> None:
    response = api.client("ali").post(
        "/api/v1/applications",
        json={
            "isp_id": api.world.isp,
            "prefixes": [{"prefix": "10.0.0.0/24"}, {"prefix": "not-a-prefix"}],
        },
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:vpnreg:problem:validation-failed"
    fields = {e["field"]: e["code"] for e in problem["errors"]}
    assert set(fields) == {"prefixes[0]", "prefixes[1]"}
    assert fields["prefixes[0]"] == "private"
    assert "prefixes[0]" in problem["detail"]


def test_schema_validation_errors_name_the_field(api: Api) -> None:
    response = api.client("ali").post("/api/v1/applications", json={"prefixes": []})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["isp_id"]


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("ali", 200),
        ("bina", 404),  # another organisation's applicant
        ("noc", 200),  # the ISP the application names
        ("ptcl-noc", 404),  # another ISP
        ("pasha", 200),  # the sector body of software houses
        ("reg1", 200),
        ("auditor", 200),
    ],
    ids=["own-applicant", "other-org", "named-isp", "other-isp", "sector", "regulator", "auditor"],
)
def test_an_application_is_visible_only_to_those_whose_business_it_is(
    api: Api, who: str, status: int
) -> None:
    app_id = api.create("ali", ["198.51.100.64/28"])["id"]
    assert api.client(who).get(f"/api/v1/applications/{app_id}").status_code == status


def test_sector_body_does_not_see_categories_it_does_not_cover(api: Api) -> None:
    app_id = api.create("bina", ["198.51.100.96/28"])["id"]
    assert api.client("pasha").get(f"/api/v1/applications/{app_id}").status_code == 404
    listed = api.client("pasha").get("/api/v1/applications?category=bank").json()
    assert listed["total"] == 0


def test_other_isp_cannot_verify_and_nothing_changes(api: Api) -> None:
    app_id = api.create("ali", ["198.51.100.128/28"])["id"]
    api.step("ali", app_id, "submit")
    response = api.client("ptcl-noc").post(
        f"/api/v1/applications/{app_id}/verify", headers={"If-Match": '"2"'}
    )
    assert response.status_code == 404
    assert api.client("ali").get(f"/api/v1/applications/{app_id}").json()["state"] == "submitted"


def test_list_filters_and_paginates(api: Api) -> None:
    for i in range(3):
        api.create("bina", [f"192.0.2.{64 + 16 * i}/28"])
    client = api.client("bina")
    first = client.get("/api/v1/applications?limit=2&offset=0").json()
    second = client.get("/api/v1/applications?limit=2&offset=2").json()
    assert first["total"] == second["total"] >= 3
    assert len(first["items"]) == 2
    ids = [a["id"] for a in first["items"] + second["items"]]
    assert len(ids) == len(set(ids))
    assert all(a["organisation_id"] == api.world.bank_org for a in first["items"])
    found = client.get("/api/v1/applications?q=192.0.2.80").json()
    assert [a["prefixes"][0]["prefix"] for a in found["items"]] == ["192.0.2.80/28"]


def test_reject_appeal_and_overturn_need_a_different_reviewer(api: Api) -> None:
    app_id = api.create("bina", ["192.0.2.128/28"])["id"]  # a bank: no endorsement step
    api.step("bina", app_id, "submit")
    api.step("noc", app_id, "verify")
    rejected = api.step(
        "reg1", app_id, "reject", {"reason_code": "incomplete", "reason": "no lease"}
    )
    assert rejected["state"] == "rejected"
    assert api.step("bina", app_id, "appeal", {"text": "lease attached"})["state"] == "appealed"
    client = api.client("reg1")
    etag = client.get(f"/api/v1/applications/{app_id}").headers["ETag"]
    same = client.post(
        f"/api/v1/applications/{app_id}/overturn",
        json={"reason": "ok"},
        headers={"If-Match": etag},
    )
    assert same.status_code in (403, 409)
    assert api.step("reg2", app_id, "overturn", {"reason": "lease is fine"})["state"] == "active"


def test_public_ip_answers_400_for_garbage_and_404_unregistered(api: Api) -> None:
    public = api.client("public")
    bad = public.get("/api/v1/ip/not-an-address")
    assert bad.status_code == 400
    missing = public.get("/api/v1/ip/192.0.2.250")
    assert missing.status_code == 404
    assert missing.json()["registered"] is False


def test_audit_log_is_for_the_auditor_only(api: Api) -> None:
    ok = api.client("auditor").get("/api/v1/audit/events?limit=5")
    assert ok.status_code == 200
    assert len(ok.json()["items"]) == 5
    denied = api.client("reg1").get("/api/v1/audit/events")
    assert denied.status_code == 403
    assert denied.json()["code"] == "role-not-allowed"


def test_session_calls_need_the_csrf_header_but_tokens_do_not(api: Api) -> None:
    client = api.new_client()
    client.cookies.update(api.client("ali").cookies)
    response = client.post(
        "/api/v1/applications",
        json={"isp_id": api.world.isp, "prefixes": [{"prefix": "192.0.2.192/28"}]},
    )
    assert response.status_code == 403
    assert response.json()["code"] == "csrf-failed"
    me = api.client("gateway").get("/api/v1/me").json()
    assert me == {
        "name": "token:gw1",
        "role": "gateway",
        "via": "token",
        "organisation_id": None,
        "isp_id": None,
        "sector_body_id": None,
        "csrf_token": None,
    }
    bad = api.new_client().get("/api/v1/me", headers={"Authorization": "Bearer vpnreg_nope"})
    assert bad.status_code == 401


def test_openapi_lists_one_literal_path_per_transition(api: Api) -> None:
    paths = api.client("public").get("/api/v1/openapi.json").json()["paths"]
    for action in (
        "submit",
        "verify",
        "endorse",
        "approve",
        "reject",
        "revoke",
        "withdraw",
        "appeal",
        "uphold",
        "overturn",
        "renew",
        "amend-peers",
        "withdraw-attestation",
        "reattest",
    ):
        assert "post" in paths[f"/api/v1/applications/{{application_id}}/{action}"], action


def test_stats_count_by_state(api: Api) -> None:
    before = api.client("reg1").get("/api/v1/stats").json()
    api.create("ali", ["192.0.2.248/29"])
    stats = api.client("reg1").get("/api/v1/stats").json()
    assert stats["applications"] == sum(stats["by_state"].values())
    assert stats["applications"] == before["applications"] + 1
    assert stats["by_state"]["draft"] == before["by_state"].get("draft", 0) + 1
    assert api.client("ali").get("/api/v1/stats").status_code == 403


def test_documents_accept_pdf_and_png_by_content_only(api: Api) -> None:
    app_id = api.create("ali", ["192.0.2.224/28"])["id"]
    client = api.client("ali")
    url = f"/api/v1/applications/{app_id}/documents"
    pdf = b"%PDF-1.4\n%test\n%%EOF\n"
    ok = client.post(url, files={"file": ("lease.pdf", pdf)}, data={"kind": "lease"})
    assert ok.status_code == 201, ok.text
    doc = ok.json()
    assert doc["media_type"] == "application/pdf" and doc["size"] == len(pdf)
    fake = client.post(url, files={"file": ("lease.pdf", b"MZ not a pdf")}, data={"kind": "x"})
    assert fake.status_code == 422
    assert fake.json()["errors"][0]["code"] == "unsupported_type"
    back = client.get(f"{url}/{doc['id']}")
    assert back.content == pdf
    assert api.client("bina").get(f"{url}/{doc['id']}").status_code == 404


def test_clock_drives_validity(api: Api) -> None:
    # The app reads time only from the injected clock.
    assert api.app.state.clock.now() == dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)


def test_submit_over_registered_space_is_a_409_naming_the_overlap(api: Api) -> None:
    # Space of its own: the module's applications share one registry.
    holder = api.create("bina", ["2001:db8:1500::/40"])["id"]
    api.step("bina", holder, "submit")
    api.step("noc", holder, "verify")
    registered = api.step("reg1", holder, "approve")
    assert registered["state"] == "active"
    app_id = api.create("ali", ["2001:db8:1510::/44"])["id"]
    client = api.client("ali")
    url = f"/api/v1/applications/{app_id}"
    response = client.post(f"{url}/submit", headers={"If-Match": client.get(url).headers["ETag"]})
    assert response.status_code == 409
    problem = response.json()
    assert problem["code"] == "overlap-conflict"
    detail = problem["detail"]
    assert "2001:db8:1510::/44 overlaps 2001:db8:1500::/40, which is already registered" in detail
    # Indus Bank's registration is not Lahore Code Works' business: not named.
    assert str(registered["tracking_number"]) not in detail
    assert client.get(url).json()["state"] == "draft"
