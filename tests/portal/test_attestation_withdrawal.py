"""The ISP's withdrawal of its attestation in the portal (issue 17): the ISP finds its
registration by searching its queue, withdraws with a reason, finds the suspended registration
waiting in its queue and re-attests it; the applicant's page says it is suspended and why; the
regulator is offered its revocation."""

from __future__ import annotations

import datetime as dt
import re

import httpx
from fastapi.testclient import TestClient

from tests.portal.forms import apply, csrf, move, sign_in, sign_out
from tests.portal.world import PortalWorld
from vpnreg.clock import FrozenClock

REASON = "Line cancelled on 14 January <b>at the subscriber's request</b>"


def _version(page: str) -> str:
    match = re.search(r'name="version" value="(\d+)"', page)
    assert match is not None
    return match.group(1)


def _decide(client: TestClient, app_id: int, action: str, **fields: str) -> httpx.Response:
    page = client.get(f"/queue/{app_id}").text
    return client.post(
        f"/queue/{app_id}/decide",
        data={
            "csrf_token": csrf(client, f"/queue/{app_id}"),
            "action": action,
            "version": _version(page),
            **fields,
        },
        follow_redirects=False,
    )


def _registration(client: TestClient, world: PortalWorld) -> tuple[int, str]:
    sign_in(client, "bina")  # a bank: no endorsement step
    app_id = apply(client, world, "198.51.100.0/28")
    tracking = re.search(
        r"VPN-\d{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", client.get(f"/applications/{app_id}").text
    )
    assert tracking is not None
    sign_out(client)
    move(client, "noc", app_id, "verify", 2)
    move(client, "reg1", app_id, "approve", 3)
    return app_id, tracking.group(0)


def test_the_isp_withdraws_and_reattests_and_the_applicant_sees_why(
    client: TestClient, world: PortalWorld
) -> None:
    app_id, tracking = _registration(client, world)
    sign_in(client, "noc")
    # An active registration waits for nobody; the ISP finds it by searching.
    queue = client.get("/queue").text
    assert tracking not in queue and 'id="find-hint"' in queue
    found = client.get("/queue", params={"q": "198.51.100.0"}).text
    assert tracking in found
    assert "Nothing found." in client.get("/queue", params={"q": "203.0.113.99"}).text
    page = client.get(f"/queue/{app_id}").text
    assert "Withdraw attestation" in page and 'id="reason-withdraw_attestation"' in page
    assert "Re-attest" not in page

    refused = _decide(client, app_id, "withdraw_attestation", reason="  ")
    assert refused.status_code == 422
    assert 'href="#reason-withdraw_attestation"' in refused.text

    done = _decide(client, app_id, "withdraw_attestation", reason=REASON)
    assert done.status_code == 303
    banner = client.get(done.headers["location"]).text
    assert f"Application {tracking} suspended: attestation withdrawn, off the allowlist." in banner
    # Now it waits in the ISP's queue, for re-attestation only.
    queue = client.get("/queue").text
    assert tracking in queue and 'class="badge suspended"' in queue
    page = client.get(f"/queue/{app_id}").text
    assert "Re-attest" in page and "Withdraw attestation</button>" not in page
    sign_out(client)

    sign_in(client, "bina")
    page = client.get(f"/applications/{app_id}").text
    notice = re.search(r'<div class="notice warn" id="suspension".*?</div>', page, re.S)
    assert notice is not None
    assert "Nayatel withdrew its attestation" in notice.group(0)
    assert "Line cancelled on 14 January &lt;b&gt;at the subscriber" in notice.group(0)
    assert "Ask for renewal" not in page  # not while suspended
    assert "Attestation withdrawn by the ISP" in page  # the timeline says it too
    sign_out(client)

    sign_in(client, "reg1")
    assert ">Revoke</button>" in client.get(f"/queue/{app_id}").text
    sign_out(client)

    sign_in(client, "noc")
    back = _decide(client, app_id, "reattest")
    assert back.status_code == 303
    banner = client.get(back.headers["location"]).text
    assert re.search(
        rf"Application {tracking} re-attested and in force again; valid until \d{{4}}-\d\d-\d\d",
        banner,
    )
    sign_out(client)
    sign_in(client, "bina")
    page = client.get(f"/applications/{app_id}").text
    assert 'id="suspension"' not in page and "Re-attested by the ISP" in page
    assert 'class="badge active"' in page


def test_the_application_page_offers_what_the_registry_accepts_at_the_request_clock(
    client: TestClient, world: PortalWorld, clock: FrozenClock
) -> None:
    """The application page asks available_actions with the request's clock, as the review page
    does: once a suspended registration's validity has ended, the ISP is no longer sent to
    re-attest it (take_step would refuse), though it still is the day before."""
    app_id, _ = _registration(client, world)
    sign_in(client, "noc")
    assert _decide(client, app_id, "withdraw_attestation", reason=REASON).status_code == 303
    page = client.get(f"/applications/{app_id}").text
    assert f'href="/queue/{app_id}">Review this application' in page
    clock.advance(dt.timedelta(days=2 * 366))
    sign_in(client, "noc")  # the old sign-in has lapsed meanwhile
    page = client.get(f"/applications/{app_id}").text
    assert 'class="badge suspended"' in page  # the sweep has not expired it yet
    assert "Review this application" not in page
    assert "Re-attest" not in client.get(f"/queue/{app_id}").text
