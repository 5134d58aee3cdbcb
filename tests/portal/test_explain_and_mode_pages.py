"""The oversight page /explain (why was this address blocked?) and the public mode-changes page
with its JSON twin /transparency/mode-changes."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.portal.forms import apply, csrf, sign_in, sign_out
from tests.portal.gateways_reports import send
from tests.portal.world import PortalWorld
from vpnreg.clock import FrozenClock
from vpnreg.core.gateway_report import CountKey, hour_of
from vpnreg.registry import services
from vpnreg.registry.models import AuditLogRow, User


def test_the_regulator_explains_an_address_and_the_read_is_audited(
    client: TestClient, world: PortalWorld, clock: FrozenClock
) -> None:
    sign_in(client, "ali")
    app_id = apply(client, world, "203.0.113.0/28")
    sign_out(client)
    hour = hour_of(clock.now())
    send(client, "gw-lahore-1", clock.now(), 3, (
        (CountKey(hour, "wireguard", "unregistered", registration_id=app_id), 6),
        (CountKey(hour, "openvpn", "unregistered", prefix="203.0.113.0/24"), 2),
    ))  # fmt: skip

    sign_in(client, "reg1")
    form = client.get("/explain")
    assert form.status_code == 200 and 'href="/explain"' in form.text
    token = csrf(client, "/explain")
    page = client.post("/explain", data={"target": "203.0.113.5", "csrf_token": token})
    assert page.status_code == 200, page.text
    assert "203.0.113.5 was not registered" in page.text  # applied for, not approved
    table = page.text.split('id="explain-rows"')[1]
    assert "gw-lahore-1" in table and "203.0.113.0/24" in table
    assert "peer-not-listed" not in table  # its terms allow any peer: the page says so
    assert "the gateway held other terms" in table
    assert "not-registered" in table

    empty = client.post("/explain", data={"target": "198.51.100.1", "csrf_token": token})
    assert "no reports mention this address" in empty.text

    bad = client.post("/explain", data={"target": "10.0.0.0/8", "csrf_token": token})
    assert bad.status_code == 422 and "There is a problem" in bad.text
    for field, value in (("hours", "many"), ("at", "yesterday"), ("hours", "9999")):
        wrong = client.post(
            "/explain", data={"target": "203.0.113.5", field: value, "csrf_token": token}
        )
        assert wrong.status_code == 422 and f'href="#{field}"' in wrong.text, (field, value)
    with client.app.state.database.session() as session:  # type: ignore[attr-defined]
        reads = session.scalars(
            select(AuditLogRow.object_id).where(AuditLogRow.action == "read_explain")
        ).all()
    assert reads == ["203.0.113.5", "198.51.100.1"]


def test_admin_may_and_an_applicant_may_not_explain(client: TestClient) -> None:
    sign_in(client, "admin")
    assert client.get("/explain").status_code == 200
    sign_out(client)
    sign_in(client, "ali")
    assert client.get("/explain").status_code == 403
    assert 'href="/explain"' not in client.get("/applications").text


def test_mode_changes_are_announced_publicly_newest_first(
    client: TestClient, clock: FrozenClock
) -> None:
    empty = client.get("/mode-changes")
    assert empty.status_code == 200 and "No enforcement mode change" in empty.text
    assert client.get("/transparency/mode-changes").json() == []
    now = clock.now()
    end = now + dt.timedelta(days=3)
    with client.app.state.database.session() as session:  # type: ignore[attr-defined]
        regulator = session.scalars(select(User).where(User.username == "reg1")).one()
        config = client.app.state.service_config  # type: ignore[attr-defined]
        services.set_mode(session, mode="dry-run", protocol="wireguard",
                          reason="WireGuard detection trial", until=end, actor=regulator,
                          now=now, config=config)  # fmt: skip
        services.set_mode(session, mode="dry-run", reason="Eid holiday: no blocking",
                          actor=regulator, now=now + dt.timedelta(minutes=5),
                          config=config)  # fmt: skip
    page = client.get("/mode-changes")
    assert page.status_code == 200
    text = page.text
    assert text.index("All protocols: enforce → dry-run") < text.index(
        "wireguard: enforce → dry-run (trial)"
    )
    assert "WireGuard detection trial" in text and "Eid holiday" in text
    assert "replaced by change 2" in text and "reg1" not in text
    listed = client.get("/transparency/mode-changes").json()
    assert [(c["id"], c["scope"], c["from"], c["to"], c["trial"]) for c in listed] == [
        (2, "all protocols", "enforce", "dry-run", False),
        (1, "wireguard", "enforce", "dry-run", True),
    ]
    assert listed[1]["planned_end"] == end.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert listed[1]["ended_by"] == "replaced by change 2"
    assert listed[0]["actor_role"] == "regulator"
    assert client.get("/transparency/mode-changes?limit=1").json()[0]["id"] == 2
    assert client.get("/transparency/mode-changes?limit=0").status_code == 422
    assert 'href="/mode-changes"' in client.get("/").text
