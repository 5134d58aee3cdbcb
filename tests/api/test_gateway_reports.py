"""POST /api/v1/gateway-reports and GET /api/v1/gateways on both backends (issue 19)."""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.api.harness import Api
from vpnreg.agent.reporter import HttpTransport, Reporter
from vpnreg.core.policy import Action, Decision, FlowKey, Rule, Verdict
from vpnreg.registry.models import GatewayFlowDay, GatewayReport, GatewayReportCount
from vpnreg.registry.services.gateway_reports import registration_flows

URL = "/api/v1/gateway-reports"


def current_feed(api: Api) -> dict[str, Any]:
    response = api.client("gateway").get("/feed/v1/snapshot")
    assert response.status_code == 200
    doc = json.loads(response.content)
    return {"session_id": doc["session_id"], "serial": doc["serial"], "set_hash": doc["set_hash"]}


def report(api: Api, gateway_id: str = "gw-1", **over: Any) -> dict[str, Any]:
    hour = api.clock.now().replace(minute=0, second=0, microsecond=0)
    body: dict[str, Any] = {
        "report_id": uuid.uuid4().hex,
        "gateway_id": gateway_id,
        "created": api.clock.now().isoformat(),
        "mode": "nftables",
        "feed": current_feed(api),
        "counts": [
            {"hour": hour.isoformat(), "protocol": "wireguard", "verdict": "registered",
             "registration_id": 7, "flows": 3},
            {"hour": hour.isoformat(), "protocol": "openvpn", "verdict": "unregistered",
             "prefix": "198.51.100.0/24", "flows": 2},
        ],
    }  # fmt: skip
    body.update(over)
    return body


def stored(api: Api) -> tuple[int, int, int]:
    """Reports, their flows, and the flows in the daily rollup (which must follow the rows)."""
    with api.app.state.database.session() as session:
        reports = session.scalar(select(func.count()).select_from(GatewayReport))
        flows = session.scalar(select(func.coalesce(func.sum(GatewayReportCount.flows), 0)))
        rolled = session.scalar(select(func.coalesce(func.sum(GatewayFlowDay.flows), 0)))
        return int(reports or 0), int(flows or 0), int(rolled or 0)


def test_a_report_is_stored_once_and_a_resend_is_not_counted_twice(api: Api) -> None:
    before = stored(api)
    body = report(api)
    first = api.client("gateway").post(URL, json=body)
    assert first.status_code == 201, first.text
    assert first.json() == {"status": "stored", "report_id": body["report_id"]}
    again = api.client("gateway").post(URL, json=body)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert stored(api) == (before[0] + 1, before[1] + 5, before[2] + 5)


def _broken(api: Api) -> list[tuple[str, dict[str, Any]]]:
    good = report(api)
    cases: list[tuple[str, dict[str, Any]]] = []

    def case(name: str, change: Any) -> None:
        body = copy.deepcopy(good)
        change(body)
        cases.append((name, body))

    case("bad-report-id", lambda b: b.update(report_id="x"))
    case("unknown-key", lambda b: b.update(flows_detail=[{"src_ip": "203.0.113.5"}]))
    case("bad-mode", lambda b: b.update(mode="drop"))
    case("naive-created", lambda b: b.update(created="2026-12-04T16:00:00"))
    case("numeric-created", lambda b: b.update(created=0))
    case("numeric-hour", lambda b: b["counts"][0].update(hour=1_796_400_000))
    case("hour-not-on-the-hour", lambda b: b["counts"][0].update(hour="2026-12-04T16:30:00Z"))
    case("unknown-protocol", lambda b: b["counts"][0].update(protocol="smtp"))
    case("unknown-verdict", lambda b: b["counts"][0].update(verdict="maybe"))
    case("port-in-a-row", lambda b: b["counts"][0].update(port=51820))
    case("foreign-address-prefix", lambda b: b["counts"][1].update(prefix="203.0.113.5/32"))
    case("prefix-and-registration", lambda b: b["counts"][1].update(registration_id=4))
    case("zero-flows", lambda b: b["counts"][0].update(flows=0))
    case("string-flows", lambda b: b["counts"][0].update(flows="3"))
    case("row-twice", lambda b: b["counts"].append(copy.deepcopy(b["counts"][0])))
    case("bad-set-hash", lambda b: b["feed"].update(set_hash="abc"))
    return cases


def test_malformed_reports_are_refused_with_problem_json_and_nothing_stored(api: Api) -> None:
    before = stored(api)
    for name, body in _broken(api):
        response = api.client("gateway").post(URL, json=body)
        assert response.status_code == 422, (name, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), name
        assert response.json()["detail"], name
    assert stored(api) == before


def test_an_oversize_body_is_refused_unread(api: Api) -> None:
    body = report(api)
    body["counts"] = body["counts"] * 20_000
    response = api.client("gateway").post(URL, json=body)
    assert response.status_code == 413


@pytest.mark.parametrize(("caller", "status"), [("public", 401), ("reg1", 403), ("ali", 403)])
def test_only_a_gateway_token_may_report(api: Api, caller: str, status: int) -> None:
    before = stored(api)
    response = api.client(caller).post(URL, json=report(api))
    assert response.status_code == status
    assert stored(api) == before


def test_gateway_list_shows_lag_staleness_and_a_foreign_set_hash(api: Api) -> None:
    ok = report(api, "gw-list-ok")
    assert ok["feed"]["serial"] >= 1, "the harness publishes a feed with applications in it"
    lagging = report(api, "gw-list-lagging")
    lagging["feed"]["serial"] -= 1
    behind = report(api, "gw-list-behind")
    behind["feed"]["set_hash"] = "0" * 64  # the registry's serial, another set
    for body in (ok, behind, lagging):
        assert api.client("gateway").post(URL, json=body).status_code == 201
    old = report(api, "gw-list-old")
    assert api.client("gateway").post(URL, json=old).status_code == 201
    listed = {g["gateway_id"]: g for g in api.client("reg1").get("/api/v1/gateways").json()}
    assert listed["gw-list-ok"]["lag"] == 0
    assert listed["gw-list-ok"]["hash_mismatch"] is False
    assert listed["gw-list-ok"]["stale"] is False
    assert listed["gw-list-behind"]["hash_mismatch"] is True
    assert listed["gw-list-lagging"]["lag"] == 1
    assert listed["gw-list-ok"]["applied_serial"] == ok["feed"]["serial"]
    # three report intervals later without a report: stale
    api.clock.advance(dt.timedelta(minutes=16))
    later = {g["gateway_id"]: g for g in api.client("reg1").get("/api/v1/gateways").json()}
    assert later["gw-list-old"]["stale"] is True
    assert api.client("ali").get("/api/v1/gateways").status_code == 403


def test_the_agents_reporter_reports_to_the_registry_once(api: Api, tmp_path: Path) -> None:
    """The agent's own reporter and HTTP transport against the registry app: the registry is
    down for the first tick (a transport error), the report waits on disk, goes with the next
    tick, and a copy of it sent again is not counted twice."""
    before = stored(api)
    down = FakeDown()
    reporter = Reporter(gateway_id="gw-agent", spool_dir=tmp_path / "reports", transport=down)
    flow = FlowKey(
        ipaddress.ip_address("198.51.100.9"), 51820, ipaddress.ip_address("203.0.113.5"), 41000, 17
    )
    decision = Decision(Verdict.REGISTERED, Action.PASS, Rule.REGISTERED_ANY_PEER, 9, 1, "x")
    now = api.clock.now()
    for _ in range(4):
        reporter.observe(
            decision=decision,
            flow=flow,
            vpn_protocol="wireguard",
            home=[ipaddress.ip_network("198.51.100.0/24")],
            now=now,
        )
    first = reporter.tick(now=now, feed=None, mode="dry-run")
    assert first is not None and first.pending == 1
    (waiting,) = reporter.spooled()
    kept = waiting.read_bytes()
    reporter.transport = HttpTransport(
        "http://testserver", api.gateway_token, client=api.new_client()
    )
    second = reporter.tick(now=now + dt.timedelta(minutes=5), feed=None, mode="dry-run")
    assert second is not None and (second.sent, second.pending) == (2, 0)
    (tmp_path / "reports" / waiting.name).write_bytes(kept)  # the same report once more
    third = reporter.send_spooled()
    assert (third.sent, third.pending) == (1, 0)  # taken as a duplicate (200), deleted
    assert stored(api) == (before[0] + 2, before[1] + 4, before[2] + 4)


class FakeDown:
    def send(self, body: bytes) -> int:
        raise httpx.ConnectError("registry down")


def test_a_registrations_flows_are_summed_per_hour_gateway_and_verdict(api: Api) -> None:
    """The query behind the application page's "why was I blocked?" table, on both backends."""
    hour = api.clock.now().replace(minute=0, second=0, microsecond=0).isoformat()

    def rows(verdict: str, flows: int) -> list[dict[str, Any]]:
        return [{"hour": hour, "protocol": "wireguard", "verdict": verdict,
                 "registration_id": 424242, "flows": flows}]  # fmt: skip

    for gateway, verdict, flows in (
        ("gw-why-a", "registered", 2),
        ("gw-why-a", "registered", 3),  # a second report of the same hour adds up
        ("gw-why-b", "unregistered", 7),
    ):
        body = report(api, gateway, counts=rows(verdict, flows))
        assert api.client("gateway").post(URL, json=body).status_code == 201
    with api.app.state.database.session() as session:
        found = registration_flows(session, registration_id=424242, now=api.clock.now())
    assert [(f.gateway_id, f.verdict, f.flows) for f in found] == [
        ("gw-why-a", "registered", 5),
        ("gw-why-b", "unregistered", 7),
    ]
    assert {f.applied_serial for f in found} == {current_feed(api)["serial"]}


def test_a_gateway_on_an_older_feed_shows_as_blocking_the_registrations_space(
    api: Api,
) -> None:
    """A gateway that does not hold a registration yet counts its flows as unregistered under
    the /24: the application page's query shows those counts (from the hour the registration
    took effect) beside the registration's own, never a /24 outside its space."""
    app_id = api.create("bina", ["192.0.2.64/26"])["id"]
    api.step("bina", app_id, "submit")
    api.step("noc", app_id, "verify")
    assert api.step("reg1", app_id, "approve")["state"] == "active"
    hour = api.clock.now().replace(minute=0, second=0, microsecond=0).isoformat()
    before = (api.clock.now() - dt.timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    registry_feed = current_feed(api)

    def unregistered(prefix: str, flows: int, at: str = hour) -> dict[str, Any]:
        return {"hour": at, "protocol": "wireguard", "verdict": "unregistered",
                "prefix": prefix, "flows": flows}  # fmt: skip

    stale = report(
        api,
        "gw-old-feed",
        feed={**registry_feed, "serial": registry_feed["serial"] - 1},  # an older feed
        counts=[
            unregistered("192.0.2.0/24", 4),
            unregistered("198.51.100.0/24", 9),  # not its space
            unregistered("192.0.2.0/24", 6, before.isoformat()),  # before it took effect
        ],
    )
    answer = api.client("gateway").post(URL, json=stale)
    assert answer.status_code == 201, answer.text
    own = report(
        api,
        "gw-current",
        counts=[
            {
                "hour": hour,
                "protocol": "wireguard",
                "verdict": "registered",
                "registration_id": app_id,
                "flows": 3,
            }
        ],
    )
    assert api.client("gateway").post(URL, json=own).status_code == 201
    with api.app.state.database.session() as session:
        found = registration_flows(session, registration_id=int(str(app_id)), now=api.clock.now())
    assert [(f.gateway_id, f.prefix, f.verdict, f.flows, f.applied_serial) for f in found] == [
        ("gw-current", None, "registered", 3, registry_feed["serial"]),
        ("gw-old-feed", "192.0.2.0/24", "unregistered", 4, registry_feed["serial"] - 1),
    ]
    page = api.client("bina").get(f"/applications/{app_id}")
    assert 'unregistered in <span class="mono">192.0.2.0/24</span>' in page.text
    assert "198.51.100.0/24" not in page.text
