"""The OpenAPI document tells the truth (issue 16, item 13), and what schemathesis found false.

Each test names what the document says and checks that the server does it; the cases found by
tests/api/test_schemathesis.py each have one here (the wrong `Allow`, the undocumented 400 and
404, the RDAP and document content types).
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from tests.api.harness import Api
from vpnreg.web.bounds import MAX_ID
from vpnreg.web.schemas import FILLED_IN

PROBLEM = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
BASE = "/api/v1/applications"


def _document(api: Api) -> dict[str, Any]:
    response = api.client("public").get("/api/v1/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, spec)
        for path, item in document["paths"].items()
        for method, spec in item.items()
    ]


def _assert_is_a_documented_problem(
    document: dict[str, Any], method: str, path: str, response: Any
) -> None:
    """`response` is a problem whose status the operation documents, in the documented shape."""
    documented = document["paths"][path][method.lower()]["responses"]
    assert str(response.status_code) in documented, (method, path, response.status_code)
    assert response.headers["content-type"] == PROBLEM
    schema = {"$ref": PROBLEM_REF, "components": document["components"]}
    jsonschema_rs.validate(schema, response.json())


def test_every_operation_documents_its_errors_as_problems(api: Api) -> None:
    document = _document(api)
    operations = _operations(document)
    assert len(operations) > 30
    for method, path, spec in operations:
        responses = spec["responses"]
        assert {"401", "503"} <= set(responses), (method, path)
        for status, response in responses.items():
            if int(status) < 400 or path == "/api/v1/ip/{address}":
                continue
            assert response["content"] == {PROBLEM: {"schema": {"$ref": PROBLEM_REF}}}, (
                method,
                path,
                status,
            )
        if method == "POST":
            assert {"403", "409", "422"} <= set(responses), (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_if_match_is_required_wherever_its_absence_is_428(api: Api) -> None:
    document = _document(api)
    with_if_match = [
        (method, path, spec)
        for method, path, spec in _operations(document)
        if any(p["name"] == "If-Match" for p in spec.get("parameters", []))
    ]
    # 13, the ISP's withdraw-attestation and reattest, and the protocol amendment's ask,
    # approve and refuse
    assert len(with_if_match) == 18
    for _method, path, spec in with_if_match:
        (header,) = [p for p in spec["parameters"] if p["name"] == "If-Match"]
        assert header["required"] is True, path
        assert {"412", "428"} <= set(spec["responses"]), path
    app_id = api.create("ali", ["203.0.113.192/28"])["id"]
    missing = api.client("ali").post(f"{BASE}/{app_id}/submit")
    assert missing.status_code == 428
    _assert_is_a_documented_problem(document, "POST", BASE + "/{application_id}/submit", missing)


def test_the_problem_schema_matches_what_the_server_sends(api: Api) -> None:
    document = _document(api)
    client = api.client("ali")
    app_id = api.create("ali", ["203.0.113.208/28"])["id"]
    one = BASE + "/{application_id}"
    cases = [
        ("GET", one, client.get(f"{BASE}/999999")),  # 404
        ("GET", one, client.get(f"{BASE}/-1")),  # 422, with errors
        (
            "POST",
            one + "/submit",
            client.post(f"{BASE}/{app_id}/submit", headers={"If-Match": '"9"'}),
        ),
        (
            "POST",
            one + "/verify",
            client.post(f"{BASE}/{app_id}/verify", headers={"If-Match": '"1"'}),
        ),
        ("GET", "/api/v1/audit/events", api.client("public").get("/api/v1/audit/events")),  # 401
    ]
    statuses = []
    for method, path, response in cases:
        _assert_is_a_documented_problem(document, method, path, response)
        statuses.append(response.status_code)
    assert statuses == [404, 422, 412, 403, 401]


def test_blank_reasons_and_names_are_refused_by_the_schema_it_documents(api: Api) -> None:
    document = _document(api)
    schemas = document["components"]["schemas"]
    for model, fields in {
        "RejectBody": ("reason_code", "reason"),
        "RevokeBody": ("reason",),
        "AppealBody": ("text",),
        "DecisionBody": ("reason",),
        "OrganisationCreate": ("name",),
    }.items():
        for name in fields:
            field = schemas[model]["properties"][name]
            assert field["minLength"] == 1 and field["pattern"] == FILLED_IN, (model, name)
    app_id = api.create("ali", ["203.0.113.224/28"])["id"]
    api.step("ali", app_id, "submit")
    client = api.client("noc")
    etag = client.get(f"{BASE}/{app_id}").headers["ETag"]
    refused = client.post(
        f"{BASE}/{app_id}/reject",
        json={"reason_code": "policy", "reason": " \t\u3000\n "},
        headers={"If-Match": etag},
    )
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["reason"]
    _assert_is_a_documented_problem(document, "POST", BASE + "/{application_id}/reject", refused)
    assert client.get(f"{BASE}/{app_id}").json()["state"] == "submitted"
    blank_name = api.client("admin").post(
        "/api/v1/organisations", json={"name": "   ", "category": "bank"}
    )
    assert blank_name.status_code == 422
    assert [e["field"] for e in blank_name.json()["errors"]] == ["name"]


def test_a_wrong_method_names_every_method_of_the_path(api: Api) -> None:
    # Starlette named the methods of the first route matching the path only (GET).
    for path, allowed in {
        BASE: "GET, POST",
        "/api/v1/organisations": "GET, POST",
        f"{BASE}/1/documents": "GET, POST",
        "/api/v1/stats": "GET",
    }.items():
        response = api.client("admin").request("PATCH", path)
        assert response.status_code == 405, path
        assert response.headers["allow"] == allowed, path
        assert response.headers["content-type"] == PROBLEM


def test_a_body_that_is_not_utf8_json_is_a_documented_400(api: Api) -> None:
    document = _document(api)
    response = api.client("admin").post(
        "/api/v1/organisations",
        content=b'{"name": "\xff\xfe"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    _assert_is_a_documented_problem(document, "POST", "/api/v1/organisations", response)


def test_creating_with_an_unknown_isp_is_a_documented_404(api: Api) -> None:
    document = _document(api)
    response = api.client("ali").post(
        BASE, json={"isp_id": 987654, "prefixes": [{"prefix": "203.0.113.240/28"}]}
    )
    assert response.status_code == 404
    _assert_is_a_documented_problem(document, "POST", BASE, response)


def test_the_rdap_answer_and_document_downloads_are_typed_as_documented(api: Api) -> None:
    document = _document(api)
    ip = document["paths"]["/api/v1/ip/{address}"]["get"]["responses"]
    for status in ("200", "400", "404"):
        assert list(ip[status]["content"]) == ["application/rdap+json"], status
    answer = api.client("public").get("/api/v1/ip/not-an-address")
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/rdap+json"
    download = document["paths"][BASE + "/{application_id}/documents/{document_id}"]["get"]
    assert set(download["responses"]["200"]["content"]) == {"application/pdf", "image/png"}


def test_security_follows_the_policy_table(api: Api) -> None:
    document = _document(api)
    paths = document["paths"]
    assert set(document["components"]["securitySchemes"]) == {"bearer", "session"}
    assert {} in paths["/api/v1/ip/{address}"]["get"]["security"]
    assert {} not in paths["/api/v1/audit/events"]["get"]["security"]
    assert paths["/feed/v1/snapshot"]["get"]["security"] == [{"bearer": []}]


def test_nul_and_control_characters_are_refused_before_the_database(api: Api) -> None:
    # PostgreSQL refuses to store NUL: each of these answered 500 there (found by schemathesis).
    document = _document(api)
    admin = api.client("admin")
    for name in ("Acme\x00Ltd", "Acme\x1bLtd"):
        response = admin.post("/api/v1/organisations", json={"name": name, "category": "bank"})
        assert response.status_code == 422, name
        _assert_is_a_documented_problem(document, "POST", "/api/v1/organisations", response)
    for query in ("q=a%00b", "state=a%00", "category=%00"):
        response = admin.get(f"{BASE}?{query}")
        assert response.status_code == 422, query
    assert admin.get("/api/v1/prefixes?state=active&state=%00").status_code == 422
    auditor = api.client("auditor")
    for query in ("actor=%00", "object_type=x%00", "object_id=%01"):
        assert auditor.get(f"/api/v1/audit/events?{query}").status_code == 422, query
    assert admin.get(f"{BASE}?q=192.0.2&state=&category=").status_code == 200


def test_ids_past_a_postgresql_integer_are_refused_and_the_largest_is_just_not_there(
    api: Api,
) -> None:
    # Ids are PostgreSQL INTEGER: 2**31 and more answered 500 there ("integer out of range").
    assert MAX_ID == 2**31 - 1
    client = api.client("reg1")
    largest = client.get(f"{BASE}?organisation_id={MAX_ID}&isp_id={MAX_ID}")
    assert largest.status_code == 200 and largest.json()["items"] == []
    assert client.get(f"{BASE}/{MAX_ID}").status_code == 404
    for url in (f"{BASE}?organisation_id={MAX_ID + 1}", f"{BASE}/{2**40}/timeline"):
        response = client.get(url)
        assert response.status_code == 422, url
    created = api.client("ali").post(
        BASE, json={"isp_id": 2**40, "prefixes": [{"prefix": "203.0.113.248/29"}]}
    )
    assert created.status_code == 422
