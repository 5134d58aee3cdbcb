"""What reviewers and applicants see around a decision (issue 15 items 2, 5, 8, 9): documents
downloadable within scope and audited, only the buttons the registry would accept, banners that
say what was decided on which application, and the validity rule."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from tests.portal.forms import apply, csrf, move, sign_in, sign_out
from tests.portal.world import PortalWorld
from vpnreg.core.review import PROVISIONAL_DAYS
from vpnreg.registry.models import AuditLogRow

PDF = b"%PDF-1.4\n% certificate\n%%EOF\n"


def _downloads(world: PortalWorld) -> list[str]:
    engine = create_engine(world.url)
    try:
        with engine.connect() as connection:
            query = select(AuditLogRow.actor).where(AuditLogRow.action == "download_document")
            return list(connection.scalars(query.order_by(AuditLogRow.seq)))
    finally:
        engine.dispose()


def _with_document(client: TestClient, world: PortalWorld) -> tuple[int, str]:
    sign_in(client, "ali")
    app_id = apply(client, world, "203.0.113.0/28")
    response = client.post(
        f"/applications/{app_id}/documents",
        data={"csrf_token": csrf(client, f"/applications/{app_id}"), "kind": "sector_certificate"},
        files={"file": ("cert (final).pdf", PDF, "application/pdf")},
        follow_redirects=False,
    )
    assert response.status_code == 303
    sign_out(client)
    return app_id, "cert__final_.pdf"


def test_reviewers_in_scope_download_from_the_review_page_and_each_is_audited(
    client: TestClient, world: PortalWorld
) -> None:
    app_id, safe_name = _with_document(client, world)
    for reviewer in ("noc", "pasha", "reg1"):
        sign_in(client, reviewer)
        page = client.get(f"/queue/{app_id}").text
        link = re.search(rf'href="(/applications/{app_id}/documents/\d+)" download', page)
        assert link is not None, reviewer
        response = client.get(link.group(1))
        assert response.status_code == 200
        assert response.content == PDF
        assert response.headers["content-type"] == "application/pdf"
        assert response.headers["content-disposition"] == f'attachment; filename="{safe_name}"'
        assert response.headers["x-content-type-options"] == "nosniff"
        sign_out(client)
    assert _downloads(world) == ["noc", "pasha", "reg1"]


def test_an_applicant_of_another_organisation_gets_404_and_no_event(
    client: TestClient, world: PortalWorld
) -> None:
    app_id, _ = _with_document(client, world)
    sign_in(client, "ali")
    link = re.search(
        rf"/applications/{app_id}/documents/\d+", client.get(f"/applications/{app_id}").text
    )
    assert link is not None
    sign_out(client)
    sign_in(client, "bina")
    assert client.get(link.group(0)).status_code == 404
    assert _downloads(world) == []


def test_decisions_are_announced_with_the_application_and_the_validity(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "bina")  # a bank: no endorsement, the regulator decides after the ISP
    app_id = apply(client, world, "198.51.100.0/28")
    page = client.get(f"/applications/{app_id}").text
    tracking = re.search(r"VPN-\d{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", page)
    assert tracking is not None
    sign_out(client)
    sign_in(client, "noc")
    response = client.post(
        f"/queue/{app_id}/decide",
        data={"csrf_token": csrf(client, f"/queue/{app_id}"), "action": "verify", "version": "2"},
    )
    assert f"Application {tracking.group(0)} verified." in response.text
    sign_out(client)
    sign_in(client, "reg1")
    response = client.post(
        f"/queue/{app_id}/decide",
        data={"csrf_token": csrf(client, f"/queue/{app_id}"), "action": "approve", "version": "3"},
    )
    assert re.search(
        rf"Application {tracking.group(0)} approved; valid until \d{{4}}-\d\d-\d\d", response.text
    )
    sign_out(client)
    sign_in(client, "bina")
    page = client.get(f"/applications/{app_id}").text
    rule = re.search(r'<p class="hint" id="validity-rule">(.*?)</p>', page, re.S)
    assert rule is not None
    assert "provisional" in rule.group(1) and f"{PROVISIONAL_DAYS} more days" in rule.group(1)
    assert "365 days from the end" in rule.group(1)


def test_buttons_follow_what_the_registry_accepts(client: TestClient, world: PortalWorld) -> None:
    sign_in(client, "bina")
    app_id = apply(client, world, "198.51.100.0/28")
    sign_out(client)
    move(client, "noc", app_id, "verify", 2)
    sign_in(client, "reg1")
    client.post(
        f"/queue/{app_id}/decide",
        data={
            "csrf_token": csrf(client, f"/queue/{app_id}"), "action": "reject", "version": "3",
            "reason_code": "policy", "reason": "not eligible",
        },
    )  # fmt: skip
    sign_out(client)
    sign_in(client, "bina")
    page = client.get(f"/applications/{app_id}").text
    assert "File appeal" in page and ">Withdraw<" in page
    assert "Change peer restrictions" not in page
    client.post(
        f"/applications/{app_id}/appeal",
        data={"csrf_token": csrf(client, f"/applications/{app_id}"), "version": "4", "text": "x"},
    )
    sign_out(client)
    sign_in(client, "reg1")  # rejected it: decides no appeal against that rejection
    page = client.get(f"/queue/{app_id}").text
    assert "Overturn rejection" not in page and "Uphold rejection" not in page
    assert "No decision is yours to take at this step." in page
    sign_out(client)
    sign_in(client, "reg2")
    page = client.get(f"/queue/{app_id}").text
    assert "Overturn rejection" in page and "Uphold rejection" in page


def test_a_refused_decision_links_its_errors_to_that_decisions_inputs(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "ali")
    app_id = apply(client, world, "203.0.113.0/28")
    sign_out(client)
    sign_in(client, "noc")
    response = client.post(
        f"/queue/{app_id}/decide",
        data={
            "csrf_token": csrf(client, f"/queue/{app_id}"),
            "action": "reject",
            "version": "2",
            "reason_code": "",
            "reason": "",
        },
        follow_redirects=False,
    )
    assert response.status_code == 422, response.text[:300]
    page = response.text
    assert "The decision was not recorded" in page
    assert 'href="#reason-reject"' in page and 'id="reason-reject"' in page
    assert "<dt>Version</dt>" not in page  # an internal number, kept as a hidden input
