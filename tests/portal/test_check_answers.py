"""The check-your-answers page before submitting, and what the apply pages offer per category
(issue 15 items 4 and 7)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.portal.forms import apply, csrf, move, sign_in, sign_out
from tests.portal.world import PortalWorld

PDF = b"%PDF-1.4\n% certificate\n%%EOF\n"


def _continue(client: TestClient, world: PortalWorld, *prefixes: str) -> int:
    """Fill the form and press Continue: a draft, and the check page for it."""
    response = client.post(
        "/apply",
        data={
            "csrf_token": csrf(client, "/apply"),
            "isp_id": str(world.isp_id),
            "prefix": list(prefixes),
            "peers": [""] * len(prefixes),
            "intent": "check",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/applications/(\d+)/check", response.headers["location"])
    assert match is not None
    return int(match.group(1))


def _register_for_the_bank(client: TestClient, world: PortalWorld, prefix: str) -> str:
    """Indus Bank's registration of `prefix` (no endorsement needed): its tracking number."""
    sign_in(client, "bina")
    app_id = apply(client, world, prefix)
    tracking = re.search(
        r"VPN-\d{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", client.get(f"/applications/{app_id}").text
    )
    assert tracking is not None
    sign_out(client)
    move(client, "noc", app_id, "verify", 2)
    move(client, "reg1", app_id, "approve", 3)
    return tracking.group(0)


def test_check_page_lists_prefixes_findings_and_documents_then_submits(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "ali")
    app_id = _continue(client, world, "203.0.113.0/28", "2001:db8:10::/48")
    client.post(
        f"/applications/{app_id}/documents",
        data={"csrf_token": csrf(client, f"/applications/{app_id}"), "kind": "sector_certificate"},
        files={"file": ("cert.pdf", PDF, "application/pdf")},
    )
    page = client.get(f"/applications/{app_id}/check")
    assert page.status_code == 200
    assert "Check your answers" in page.text
    findings = re.search(r'<ul class="findings" id="findings">(.*?)</ul>', page.text, re.S)
    assert findings is not None
    assert findings.group(1).count("valid public prefix") == 2
    assert findings.group(1).count("no overlap with registered space") == 2
    assert "cert.pdf" in page.text and f"/applications/{app_id}/documents/" in page.text
    version = re.search(r'name="version" value="(\d+)"', page.text)
    assert version is not None
    done = client.post(
        f"/applications/{app_id}/check",
        data={
            "csrf_token": csrf(client, f"/applications/{app_id}/check"),
            "version": version.group(1),
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    status = client.get(done.headers["location"]).text
    assert re.search(r"Application VPN-\S+ submitted; your ISP will verify it next\.", status)
    # Once submitted, the check page leads back to the application.
    again = client.get(f"/applications/{app_id}/check", follow_redirects=False)
    assert again.status_code == 303


def test_check_page_blocks_registered_space_with_the_reason_and_submit_is_refused(
    client: TestClient, world: PortalWorld
) -> None:
    bank_tracking = _register_for_the_bank(client, world, "198.51.100.0/24")
    sign_in(client, "ali")
    app_id = _continue(client, world, "198.51.100.0/28")
    page = client.get(f"/applications/{app_id}/check").text
    blocking = re.search(r'<div class="problem" role="alert" id="blocking">(.*?)</div>', page, re.S)
    assert blocking is not None
    reason = re.sub(r"<[^>]+>", "", blocking.group(1))
    assert "198.51.100.0/28 overlaps 198.51.100.0/24, which is already registered" in reason
    # Another organisation's registration is not named to this applicant.
    assert bank_tracking not in page and "another organisation&#39;s registration" in page
    assert f'action="/applications/{app_id}/check"' not in page
    # Submitting anyway (an old page, a script) is refused by the registry with the reason.
    refused = client.post(
        f"/applications/{app_id}/check",
        data={"csrf_token": csrf(client, f"/applications/{app_id}"), "version": "1"},
    )
    assert refused.status_code == 409
    assert "already registered" in refused.text
    assert 'class="badge draft"' in client.get(f"/applications/{app_id}").text


def test_a_claim_in_review_is_shown_but_does_not_block(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "bina")
    apply(client, world, "198.51.100.0/24")
    sign_out(client)
    sign_in(client, "ali")
    app_id = _continue(client, world, "198.51.100.0/28")
    page = client.get(f"/applications/{app_id}/check").text
    assert (
        "lies inside 198.51.100.0/24 of another organisation&#39;s application (in review" in page
    )
    assert 'id="blocking"' not in page
    assert f'action="/applications/{app_id}/check"' in page


def test_document_kinds_follow_the_category_and_version_is_not_shown(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "ali")  # a software house
    app_id = _continue(client, world, "203.0.113.0/28")
    page = client.get(f"/applications/{app_id}").text
    options = re.findall(
        r'<option value="(\w+)"', page.split('id="doc-kind"')[1].split("</select>")[0]
    )
    assert options == ["sector_certificate", "supporting_document"]
    assert "<dt>Version</dt>" not in page
    assert 'name="version" value="1"' in page  # still sent with every form, hidden
    refused = client.post(
        f"/applications/{app_id}/documents",
        data={"csrf_token": csrf(client, f"/applications/{app_id}"), "kind": "diplomatic_note"},
        files={"file": ("note.pdf", PDF, "application/pdf")},
    )
    assert refused.status_code == 422
    assert "cert.pdf" not in refused.text


def test_the_peer_change_form_starts_from_the_current_peers(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "ali")
    response = client.post(
        "/apply",
        data={
            "csrf_token": csrf(client, "/apply"),
            "isp_id": str(world.isp_id),
            "prefix": ["203.0.113.0/28"],
            "peers": ["198.51.100.10/32 198.51.100.20/32"],
            "intent": "draft",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    page = client.get(response.headers["location"]).text
    assert 'name="peers" value="198.51.100.10/32 198.51.100.20/32"' in page
