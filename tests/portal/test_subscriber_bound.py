"""The apply form's "my address changes" choice: a subscriber-bound application that the ISP
verifies seeing the account id (issue 17)."""

from __future__ import annotations

import re

import httpx
from fastapi.testclient import TestClient

from tests.portal.forms import csrf, sign_in, sign_out
from tests.portal.world import PortalWorld


def _post(client: TestClient, world: PortalWorld, **fields: object) -> httpx.Response:
    data: dict[str, object] = {
        "csrf_token": csrf(client, "/apply"),
        "isp_id": str(world.isp_id),
        "prefix": [""],
        "peers": [""],
        "intent": "submit",
    }
    data.update(fields)
    return client.post("/apply", data=data, follow_redirects=False)


def test_the_form_offers_both_choices_and_the_protocols(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "bina")
    page = client.get("/apply").text
    assert "My ISP gives me a fixed address (prefixes)" in page
    assert "My address changes (my ISP account id)" in page
    assert 'name="subscriber_id"' in page
    for protocol in ("openvpn", "wireguard", "ipsec", "pptp", "l2tp", "sstp", "other-vpn"):
        assert f'value="{protocol}"' in page


def test_a_subscriber_bound_application_from_the_form_reaches_the_isps_review(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "bina")
    response = _post(
        client,
        world,
        bound_to="subscriber",
        subscriber_id="ACC-4471",
        protocols=["wireguard", "ipsec"],
    )
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    match = re.match(r"/applications/(\d+)\?done=submitted", location)
    assert match is not None
    app_id = int(match.group(1))
    mine = client.get(f"/applications/{app_id}").text
    assert "ACC-4471" in mine and "wireguard, ipsec" in mine
    sign_out(client)
    sign_in(client, "noc")
    queue = client.get("/queue").text
    assert "subscriber ACC-4471" in queue
    review = client.get(f"/queue/{app_id}").text
    assert 'id="bound-subscriber"' in review and "ACC-4471" in review


def test_the_account_id_is_required_and_checked_and_the_choice_is_kept(
    client: TestClient, world: PortalWorld
) -> None:
    sign_in(client, "bina")
    empty = _post(client, world, bound_to="subscriber", subscriber_id="")
    assert empty.status_code == 422
    text = empty.text
    assert "enter the account id your ISP gave you" in text
    assert 'value="subscriber" checked' in text
    bad = _post(client, world, bound_to="subscriber", subscriber_id="ACC 1", protocols=["openvpn"])
    assert bad.status_code == 422
    assert "is not a subscriber id" in bad.text
    assert 'value="openvpn" checked' in bad.text
