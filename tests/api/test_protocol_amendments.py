"""Protocol amendments over the API (issue 17): the applicant asks (202, the old list still in
force), the regulator approves or refuses with If-Match; wrong callers, stale versions, bad
protocol names and unknown amendments get their problem documents and change nothing. The
OpenAPI document lists each operation with its errors."""

from __future__ import annotations

from tests.api.harness import Api
from tests.api.test_applications import PROBLEM

BASE = "/api/v1/applications"


def _registered(api: Api, prefix: str) -> int:
    app_id = api.create("ali", [prefix])["id"]
    for who, action in (("ali", "submit"), ("noc", "verify"), ("pasha", "endorse"),
                        ("reg1", "approve")):  # fmt: skip
        api.step(who, app_id, action)
    assert isinstance(app_id, int)
    return app_id


def _etag(api: Api, who: str, app_id: int) -> str:
    return str(api.client(who).get(f"{BASE}/{app_id}").headers["ETag"])


def test_ask_then_approve_puts_the_new_list_in_force(api: Api) -> None:
    app_id = _registered(api, "203.0.113.96/28")
    ali = api.client("ali")
    bad = ali.post(
        f"{BASE}/{app_id}/amend-protocols",
        json={"protocols": ["telnet"]},
        headers={"If-Match": _etag(api, "ali", app_id)},
    )
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    asked = ali.post(
        f"{BASE}/{app_id}/amend-protocols",
        json={"protocols": ["wireguard", "openvpn"]},
        headers={"If-Match": _etag(api, "ali", app_id)},
    )
    assert asked.status_code == 202, asked.text
    amendment = asked.json()
    assert amendment["protocols"] == ["openvpn", "wireguard"] and amendment["state"] == "pending"
    assert ali.get(f"{BASE}/{app_id}").json()["protocols"] == []
    assert ali.get(f"{BASE}/{app_id}/protocol-amendments").json() == [amendment]

    url = f"{BASE}/{app_id}/protocol-amendments/{amendment['id']}/approve"
    reg = api.client("reg1")
    assert (
        api.client("ali").post(url, headers={"If-Match": _etag(api, "ali", app_id)}).status_code
        == 403
    )
    assert reg.post(url).status_code == 428
    assert reg.post(url, headers={"If-Match": '"1"'}).status_code == 412
    missing = reg.post(
        f"{BASE}/{app_id}/protocol-amendments/{amendment['id'] + 99}/approve",
        headers={"If-Match": _etag(api, "reg1", app_id)},
    )
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert ali.get(f"{BASE}/{app_id}").json()["protocols"] == []
    done = reg.post(url, headers={"If-Match": _etag(api, "reg1", app_id)})
    assert done.status_code == 200, done.text
    assert done.json()["protocols"] == ["openvpn", "wireguard"]
    assert ali.get(f"{BASE}/{app_id}/protocol-amendments").json() == []
    again = reg.post(url, headers={"If-Match": _etag(api, "reg1", app_id)})
    assert again.status_code == 404


def test_a_refusal_keeps_the_old_list(api: Api) -> None:
    app_id = _registered(api, "203.0.113.112/28")
    asked = api.client("ali").post(
        f"{BASE}/{app_id}/amend-protocols",
        json={"protocols": ["ipsec"]},
        headers={"If-Match": _etag(api, "ali", app_id)},
    )
    assert asked.status_code == 202, asked.text
    refused = api.client("reg1").post(
        f"{BASE}/{app_id}/protocol-amendments/{asked.json()['id']}/refuse",
        headers={"If-Match": _etag(api, "reg1", app_id)},
    )
    assert refused.status_code == 200, refused.text
    assert refused.json()["protocols"] == []
    assert api.client("ali").get(f"{BASE}/{app_id}/protocol-amendments").json() == []


def test_the_openapi_document_lists_the_operations_and_their_errors(api: Api) -> None:
    paths = api.client("public").get("/api/v1/openapi.json").json()["paths"]
    asked = paths[f"{BASE}/{{application_id}}/amend-protocols"]["post"]
    assert {"202", "403", "404", "412", "422", "428"} <= set(asked["responses"])
    for decision in ("approve", "refuse"):
        op = paths[f"{BASE}/{{application_id}}/protocol-amendments/{{amendment_id}}/{decision}"]
        assert {"200", "403", "404", "409", "412", "428"} <= set(op["post"]["responses"])
    assert "200" in paths[f"{BASE}/{{application_id}}/protocol-amendments"]["get"]["responses"]
