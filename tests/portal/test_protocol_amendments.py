"""Protocol amendments in the portal (issue 17): the applicant ticks a new list on the
application's page, sees it waiting while the old list holds; the regulator approves or refuses it
from the review page; a stale page's decision is refused and others may not decide."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.portal.forms import apply, csrf, sign_in, sign_out
from tests.portal.world import PortalWorld


def _version(page: str) -> str:
    match = re.search(r'name="version" value="(\d+)"', page)
    assert match is not None
    return match.group(1)


def _protocols(page: str) -> str:
    match = re.search(r'<dd id="protocols">([^<]*)</dd>', page)
    assert match is not None
    return match.group(1)


def _ask(client: TestClient, app_id: int, protocols: list[str]) -> int:
    page = client.get(f"/applications/{app_id}").text
    assert 'id="amend-protocols"' in page
    response = client.post(
        f"/applications/{app_id}/protocols",
        data={
            "csrf_token": csrf(client, f"/applications/{app_id}"),
            "version": _version(page),
            "protocols": protocols,
        },
        follow_redirects=False,
    )
    return response.status_code


def test_the_applicant_asks_and_the_regulator_approves_then_refuses(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "ali")
    app_id = apply(client, world, "203.0.113.64/28")
    assert _ask(client, app_id, ["telnet"]) == 422
    assert _ask(client, app_id, ["wireguard", "openvpn"]) == 303
    page = client.get(f"/applications/{app_id}?done=protocols_requested").text
    assert "Protocol change requested." in page
    notice = re.search(r'<p class="notice" id="pending-protocols">.*?</p>', page, re.S)
    assert notice is not None and "openvpn, wireguard" in notice.group(0)
    assert _protocols(page) == "any"  # the old list holds
    sign_out(client)

    sign_in(client, "noc")  # the ISP sees the request but may not decide it
    review = client.get(f"/queue/{app_id}").text
    assert 'id="protocol-amendment"' in review and "Approve protocol change" not in review
    match = re.search(r"/queue/\d+/protocol-amendments/(\d+)/approve", review)
    assert match is None
    sign_out(client)

    sign_in(client, "reg1")
    review = client.get(f"/queue/{app_id}").text
    match = re.search(rf"/queue/{app_id}/protocol-amendments/(\d+)/approve", review)
    assert match is not None and "Refuse protocol change" in review
    url = match.group(0)
    token = csrf(client, f"/queue/{app_id}")
    stale = client.post(url, data={"csrf_token": token, "version": "1"})
    assert stale.status_code == 412
    done = client.post(
        url, data={"csrf_token": token, "version": _version(review)}, follow_redirects=False
    )
    assert done.status_code == 303
    after = client.get(done.headers["location"]).text
    assert "Protocol change approved and in force." in after
    assert 'id="protocol-amendment"' not in after
    sign_out(client)

    sign_in(client, "ali")
    assert _protocols(client.get(f"/applications/{app_id}").text) == "openvpn, wireguard"
    assert _ask(client, app_id, []) == 303  # back to any
    sign_out(client)
    sign_in(client, "reg1")
    review = client.get(f"/queue/{app_id}").text
    match = re.search(rf"/queue/{app_id}/protocol-amendments/(\d+)/refuse", review)
    assert match is not None
    refused = client.post(
        match.group(0),
        data={"csrf_token": csrf(client, f"/queue/{app_id}"), "version": _version(review)},
        follow_redirects=False,
    )
    assert refused.status_code == 303
    assert "Protocol change refused" in client.get(refused.headers["location"]).text
    sign_out(client)
    sign_in(client, "ali")
    page = client.get(f"/applications/{app_id}").text
    assert _protocols(page) == "openvpn, wireguard" and 'id="pending-protocols"' not in page
