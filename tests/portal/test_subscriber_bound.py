"""The apply form's "my address changes" choice: a subscriber-bound application that the ISP
verifies seeing the account id (issue 17)."""

from __future__ import annotations

import re

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.portal.forms import csrf, move, sign_in, sign_out
from tests.portal.world import PortalWorld
from vpnreg.clock import FrozenClock
from vpnreg.core.bindings import BindingEvent
from vpnreg.registry.models import ISP
from vpnreg.registry.services import ServiceConfig
from vpnreg.registry.services.bindings import report_events
from vpnreg.registry.services.unit_of_work import Database


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
    # no prefixes, so no peers to restrict; the protocol list may still change
    assert 'id="amend-peers"' not in mine and 'id="amend-protocols"' in mine
    sign_out(client)
    sign_in(client, "noc")
    queue = client.get("/queue").text
    assert "subscriber ACC-4471" in queue
    review = client.get(f"/queue/{app_id}").text
    assert 'id="bound-subscriber"' in review and "ACC-4471" in review
    assert 'id="subscriber-attestation"' in review and 'id="findings"' not in review


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


def test_the_public_lookup_page_shows_a_bound_address_without_the_subscriber(
    client: TestClient, world: PortalWorld, clock: FrozenClock
) -> None:
    sign_in(client, "bina")
    response = _post(client, world, bound_to="subscriber", subscriber_id="ACC-77")
    app_id = int(response.headers["location"].split("/")[2].split("?")[0])
    sign_out(client)
    move(client, "noc", app_id, "verify", 2)
    move(client, "reg1", app_id, "approve", 3)
    database = Database(world.settings.database_url)
    try:
        with database.session() as session:
            isp = session.scalar(select(ISP.id).where(ISP.name == world.isp_name))
            assert isp is not None
            [result] = report_events(
                session,
                actor="test:isp",
                isp_id=isp,
                events=[BindingEvent("start", "ACC-77", "s", "198.51.100.77", (2048, 4095))],
                now=clock.now(),
                config=ServiceConfig.from_settings(world.settings),
            )
            assert result.status == "stored"
    finally:
        database.dispose()
    # The lookup answers from the feed's last publish (ADR 0014); a report made outside this
    # server is published by its next catch-up (every check_interval_s).
    client.app.state.feed.publisher.catch_up(check_time=False)  # type: ignore[attr-defined]
    page = client.get("/lookup", params={"ip": "198.51.100.77"}).text
    assert "Registered" in page and "ports 2048–4095" in page
    assert "ACC-77" not in page
