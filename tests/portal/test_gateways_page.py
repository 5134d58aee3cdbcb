"""The gateway list page (/gateways): regulator and admin only, flags a stale gateway; and an
application's page showing its flows as the gateways counted them ("why was I blocked?")."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from tests.portal.forms import apply, sign_in
from tests.portal.gateways_reports import send
from tests.portal.world import PortalWorld
from vpnreg.clock import FrozenClock
from vpnreg.core.gateway_report import CountKey


def test_regulator_sees_each_gateway_and_the_stale_one_flagged(
    client: TestClient, clock: FrozenClock
) -> None:
    sign_in(client, "reg1")
    assert "No gateway has reported yet" in client.get("/gateways").text
    send(client, "gw-quiet", clock.now() - dt.timedelta(minutes=20), 4)
    send(client, "gw-busy", clock.now() - dt.timedelta(minutes=1), 5)
    page = client.get("/gateways")
    assert page.status_code == 200
    rows = {row.split("</td>")[0]: row for row in page.text.split('<td class="mono">')[1:]}
    assert set(rows) == {"gw-busy", "gw-quiet"}
    assert "<strong>stale</strong>" in rows["gw-quiet"]
    assert "<strong>stale</strong>" not in rows["gw-busy"] and "<td>5</td>" in rows["gw-busy"]
    assert 'href="/gateways"' in page.text


def test_admin_may_and_an_applicant_may_not_open_the_gateway_list(client: TestClient) -> None:
    sign_in(client, "admin")
    assert client.get("/gateways").status_code == 200
    client.cookies.clear()
    sign_in(client, "ali")
    assert client.get("/gateways").status_code == 403


def test_the_applicant_sees_its_flows_per_gateway_and_the_gateways_serial(
    client: TestClient, world: PortalWorld, clock: FrozenClock
) -> None:
    sign_in(client, "ali")
    app_id = apply(client, world, "203.0.113.0/28")
    now = clock.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    old = hour - dt.timedelta(days=15)

    def row(at: dt.datetime, verdict: str, registration: int, flows: int) -> tuple[CountKey, int]:
        return (CountKey(at, "wireguard", verdict, registration_id=registration), flows)

    send(client, "gw-fresh", now, 9, (row(hour, "registered", app_id, 4),))
    send(
        client,
        "gw-behind",
        now - dt.timedelta(minutes=1),
        7,
        (row(hour, "unregistered", app_id, 6), row(hour, "unregistered", app_id + 1, 99)),
    )
    send(client, "gw-old", old, 7, (row(old, "unregistered", app_id, 55),))
    page = client.get(f"/applications/{app_id}").text
    section = page.split('id="gateway-flows"')[1].split("</section>")[0]
    assert "gw-fresh" in section and "<td>registered</td><td>4</td>" in section
    assert "gw-behind" in section and "<td>unregistered</td><td>6</td>" in section
    assert "<td>7" in section and "<td>9" in section  # each gateway's applied serial
    assert "99" not in section  # another registration's flows
    assert "gw-old" not in section  # older than 14 days
