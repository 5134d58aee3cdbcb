"""PUT /api/v1/isps/{isp_id}/bindings and subscriber-bound applications on the JSON API."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.api.harness import Api
from vpnreg.registry.models import Binding
from vpnreg.registry.services.tokens import create_token
from vpnreg.registry.services.unit_of_work import Database

PROBLEM = "application/problem+json"


def _bearer_of(api: Api, user_id: int) -> TestClient:
    database = Database(api.url)
    try:
        with database.session() as session:
            _, secret = create_token(
                session, name="noc-bot", user_id=user_id, actor="cli:admin", now=api.clock.now()
            )
    finally:
        database.dispose()
    client = api.new_client()
    client.headers["Authorization"] = f"Bearer {secret}"
    return client


def _bindings(api: Api, subscriber_prefix: str) -> list[tuple[str, str, str, bool]]:
    database = Database(api.url)
    try:
        with database.session() as session:
            rows = session.scalars(
                select(Binding)
                .where(Binding.subscriber_id.startswith(subscriber_prefix))
                .order_by(Binding.id)
            )
            return [(r.subscriber_id, r.session_id, r.address, r.ended_at is None) for r in rows]
    finally:
        database.dispose()


def _url(api: Api, isp: int | None = None) -> str:
    return f"/api/v1/isps/{isp or api.world.isp}/bindings"


def test_an_isp_token_reports_bindings_and_gets_results_in_order(api: Api) -> None:
    robot = _bearer_of(api, api.world.isp_user.id)
    events = [
        {
            "event": "start",
            "subscriber_id": "A-1",
            "session_id": "s1",
            "address": "198.51.100.20",
            "ports": [1024, 2047],
        },
        {
            "event": "start",
            "subscriber_id": "A-2",
            "session_id": "s2",
            "address": "198.51.100.20",
            "ports": [2000, 3000],
        },
        {"event": "start", "subscriber_id": "A-3", "session_id": "s3", "address": "10.0.0.1"},
        {
            "event": "start",
            "subscriber_id": "A-4",
            "session_id": "s4",
            "address": "2001:db8:44::/56",
            "until": "2026-01-15T19:00:00+05:00",
        },
    ]
    answer = robot.put(_url(api), json={"events": events})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == ["stored", "refused", "refused", "stored"]
    assert results[0] == {"status": "stored"}
    assert "overlaps a live binding of another subscriber" in results[1]["error"]
    assert "10.0.0.1" in results[2]["error"]
    # A retransmission of the whole report stores nothing twice; a stop ends the first.
    again = robot.put(_url(api), json={"events": events})
    assert [r["status"] for r in again.json()["results"]] == [r["status"] for r in results]
    stop = robot.put(_url(api), json={"events": [{**events[0], "event": "stop"}]})
    assert stop.json() == {"results": [{"status": "stored"}]}
    assert _bindings(api, "A-") == [
        ("A-1", "s1", "198.51.100.20/32", False),
        ("A-4", "s4", "2001:db8:44::/56", True),
    ]


def test_callers_who_are_not_that_isps_are_refused_and_nothing_is_stored(api: Api) -> None:
    body = {
        "events": [
            {
                "event": "start",
                "subscriber_id": "B-1",
                "session_id": "s",
                "address": "198.51.100.30",
            }
        ]
    }
    other_isp = _bearer_of(api, api.world.other_isp_user.id)
    assert other_isp.put(_url(api), json=body).status_code == 403
    own_isp = _bearer_of(api, api.world.isp_user.id)
    assert own_isp.put(_url(api, isp=api.world.other_isp), json=body).status_code == 403
    assert own_isp.put(_url(api, isp=999_999), json=body).status_code == 403
    for who, status in [("applicant", 403), ("regulator", 403), ("gateway", 403), ("public", 401)]:
        refused = api.client(who).put(_url(api), json=body)
        assert refused.status_code == status, (who, refused.text)
        assert refused.headers["content-type"] == PROBLEM
    assert _bindings(api, "B-") == []
    # The ISP's user signed in through the portal may report too (cookie and CSRF header).
    assert api.client("isp").put(_url(api), json=body).json() == {"results": [{"status": "stored"}]}


def test_more_than_10000_events_or_a_malformed_body_store_nothing(api: Api) -> None:
    robot = _bearer_of(api, api.world.isp_user.id)
    event = {
        "event": "start",
        "subscriber_id": "C-1",
        "session_id": "s",
        "address": "198.51.100.40",
    }
    too_many = robot.put(_url(api), json={"events": [event] * 10_001})
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "events"
    bad_kind = robot.put(_url(api), json={"events": [event, {**event, "event": "restart"}]})
    assert bad_kind.status_code == 422
    assert bad_kind.json()["errors"][0]["field"] == "events[1].event"
    huge = json.dumps({"events": [{**event, "session_id": "x" * 200}] * 40_000})
    too_large = robot.put(_url(api), content=huge, headers={"Content-Type": "application/json"})
    assert too_large.status_code == 413
    assert _bindings(api, "C-") == []


def test_10000_events_fit_in_one_report(api: Api) -> None:
    robot = _bearer_of(api, api.world.isp_user.id)
    events = [
        {
            "event": "start",
            "subscriber_id": f"D-{i:05d}-{'x' * 40}",
            "session_id": f"{i:08x}" * 8,
            "address": f"203.0.113.{i // 64}",
            "ports": [1024 * (i % 64), 1024 * (i % 64) + 1023],
            "until": "2026-01-16T09:00:00Z",
        }
        for i in range(10_000)
    ]
    answer = robot.put(_url(api), json={"events": events})
    assert answer.status_code == 200, answer.text[:500]
    assert {r["status"] for r in answer.json()["results"]} == {"stored"}
    assert len(answer.json()["results"]) == 10_000
    database = Database(api.url)
    try:
        with database.session() as session:
            count = session.scalar(
                select(func.count())
                .select_from(Binding)
                .where(Binding.subscriber_id.startswith("D-"))
            )
    finally:
        database.dispose()
    assert count == 10_000


def test_a_subscriber_bound_application_through_the_api(api: Api) -> None:
    created = api.client("bina").post(
        "/api/v1/applications",
        json={"isp_id": api.world.isp, "subscriber_id": "E-77", "protocols": ["wireguard"]},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["bound_to"], body["subscriber_id"], body["prefixes"], body["protocols"]) == (
        "subscriber",
        "E-77",
        [],
        ["wireguard"],
    )
    app_id = body["id"]
    api.step("bina", app_id, "submit")
    # The ISP sees the subscriber id it attests when it verifies.
    seen = api.client("noc").get(f"/api/v1/applications/{app_id}").json()
    assert seen["subscriber_id"] == "E-77"
    assert api.step("noc", app_id, "verify")["state"] == "isp_verified"
    both = api.client("bina").post(
        "/api/v1/applications",
        json={
            "isp_id": api.world.isp,
            "subscriber_id": "E-78",
            "prefixes": [{"prefix": "192.0.2.64/28", "peers": []}],
        },
    )
    assert both.status_code == 422
    assert both.json()["errors"][0]["field"] == "prefixes"
    bad = api.client("bina").post(
        "/api/v1/applications",
        json={"isp_id": api.world.isp, "subscriber_id": "E 1", "protocols": ["telnet"]},
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"subscriber_id", "protocols[0]"}


def test_bound_addresses_answer_the_public_lookup_without_naming_the_subscriber(
    api: Api,
) -> None:
    created = api.client("bina").post(
        "/api/v1/applications", json={"isp_id": api.world.isp, "subscriber_id": "F-SECRET-9"}
    )
    app_id = created.json()["id"]
    api.step("bina", app_id, "submit")
    api.step("noc", app_id, "verify")
    approved = api.step("reg1", app_id, "approve")
    assert approved["state"] == "active"
    robot = _bearer_of(api, api.world.isp_user.id)
    event = {
        "event": "start",
        "subscriber_id": "F-SECRET-9",
        "session_id": "f1",
        "address": "198.51.100.60",
        "ports": [4096, 8191],
        "until": "2026-01-15T11:00:00Z",
    }
    assert robot.put(_url(api), json={"events": [event]}).json() == {
        "results": [{"status": "stored"}]
    }
    public = api.client("public")
    inside = public.get("/api/v1/ip/198.51.100.60", params={"port": 5000})
    assert inside.status_code == 200, inside.text
    body = inside.json()
    assert body["registered"] is True
    assert body["binding"] == {"ports": [4096, 8191], "until": "2026-01-15T11:00:00Z"}
    assert body["cidr0_cidrs"] == [{"v4prefix": "198.51.100.60", "length": 32}]
    assert "F-SECRET-9" not in inside.text and "subscriber" not in inside.text
    outside = public.get("/api/v1/ip/198.51.100.60", params={"port": 80})
    assert outside.status_code == 404
    later = public.get(
        "/api/v1/ip/198.51.100.60", params={"port": 5000, "at": "2026-01-15T11:00:00Z"}
    )
    assert later.status_code == 404
    naive = public.get("/api/v1/ip/198.51.100.60", params={"at": "2026-01-15T10:00:00"})
    assert naive.status_code == 422
    regulator = api.client("regulator").get(
        "/api/v1/lookup", params={"ip": "198.51.100.60", "port": 4096}
    )
    assert regulator.json()["registration_id"] == app_id
    assert regulator.json()["binding"]["ports"] == [4096, 8191]


def test_the_bindings_operation_is_documented_with_its_errors(api: Api) -> None:
    document = api.client("public").get("/api/v1/openapi.json").json()
    operation = document["paths"]["/api/v1/isps/{isp_id}/bindings"]["put"]
    assert set(operation["responses"]) >= {"200", "401", "403", "404", "413", "422", "503"}
    assert "8 MiB for a binding report" in operation["responses"]["413"]["description"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    report = document["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert report["properties"]["events"]["maxItems"] == 10_000
    event = document["components"]["schemas"]["BindingEventIn"]
    assert event["properties"]["event"]["enum"] == ["start", "interim", "stop"]
    assert set(event["required"]) == {"event", "subscriber_id", "session_id", "address"}
    create = document["components"]["schemas"]["ApplicationCreate"]["properties"]
    assert "subscriber_id" in create and "protocols" in create
