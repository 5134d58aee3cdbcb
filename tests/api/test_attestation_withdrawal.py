"""The ISP's withdrawal of its attestation through the API (issue 17), both backends: the
literal step paths with If-Match, who may take them, the bounded reason, the public lookup,
the timeline and the outbox, re-attestation and the regulator's revocation."""

from __future__ import annotations

import httpx

from tests.api.harness import Api
from vpnreg.registry.services.outbox import list_outbox
from vpnreg.registry.services.unit_of_work import Database

PROBLEM = "application/problem+json"
REASON = "line cancelled; the address now belongs to another subscriber"


def _registration(api: Api, prefix: str) -> int:
    """An active registration of the bank (no endorsement step), attested by noc."""
    app_id = api.create("bina", [prefix])["id"]
    api.step("bina", app_id, "submit")
    api.step("noc", app_id, "verify")
    assert api.step("reg1", app_id, "approve")["state"] == "active"
    return int(str(app_id))


def _post(api: Api, who: str, app_id: int, path: str, body: object = None) -> httpx.Response:
    client = api.client(who)
    etag = api.client("reg1").get(f"/api/v1/applications/{app_id}").headers["ETag"]
    return client.post(
        f"/api/v1/applications/{app_id}/{path}", json=body, headers={"If-Match": etag}
    )


def _state(api: Api, app_id: int) -> str:
    return str(api.client("reg1").get(f"/api/v1/applications/{app_id}").json()["state"])


def test_withdrawal_and_reattestation_through_the_step_paths(api: Api) -> None:
    app_id = _registration(api, "192.0.2.0/28")
    assert api.client("public").get("/api/v1/ip/192.0.2.5").status_code == 200
    url = f"/api/v1/applications/{app_id}/withdraw-attestation"
    missing = api.client("noc").post(url, json={"reason": REASON})
    assert (missing.status_code, missing.json()["code"]) == (428, "if-match-required")
    stale = api.client("noc").post(url, json={"reason": REASON}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412

    done = _post(api, "noc", app_id, "withdraw-attestation", {"reason": REASON})
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "suspended"
    assert done.headers["ETag"] == f'"{done.json()["version"]}"'
    # Off the allowlist at once: the public lookup no longer finds it.
    assert api.client("public").get("/api/v1/ip/192.0.2.5").status_code == 404
    # The applicant sees why, in the timeline, and was told.
    timeline = api.client("bina").get(f"/api/v1/applications/{app_id}/timeline").json()
    assert (timeline[-1]["action"], timeline[-1]["to_state"], timeline[-1]["reason"]) == (
        "withdraw_attestation", "suspended", REASON,
    )  # fmt: skip
    database = Database(api.url)
    try:
        with database.session() as session:
            told = [
                m.recipient
                for m in list_outbox(session, application_id=app_id)
                if m.event == "withdraw_attestation"
            ]
    finally:
        database.dispose()
    assert told == ["bina"]

    back = _post(api, "noc", app_id, "reattest")
    assert back.status_code == 200, back.text
    assert back.json()["state"] == "active"
    assert api.client("public").get("/api/v1/ip/192.0.2.5").status_code == 200


def test_only_the_attesting_isp_withdraws_and_a_reason_is_required_and_bounded(
    api: Api,
) -> None:
    app_id = _registration(api, "192.0.2.16/28")
    for who, status in (("ptcl-noc", 404), ("reg1", 403), ("bina", 403), ("gateway", 403)):
        response = _post(api, who, app_id, "withdraw-attestation", {"reason": REASON})
        assert response.status_code == status, (who, response.text)
        assert response.headers["content-type"] == PROBLEM
    for body in ({}, {"reason": "   "}, {"reason": "x" * 4001}, {"reason": REASON, "code": "x"}):
        response = _post(api, "noc", app_id, "withdraw-attestation", body)
        assert response.status_code == 422, body
        assert response.json()["errors"][0]["field"] in ("reason", "code")
    # Nothing suspended meanwhile; and only a suspended registration can be re-attested.
    assert _state(api, app_id) == "active"
    not_suspended = _post(api, "noc", app_id, "reattest")
    assert (not_suspended.status_code, not_suspended.json()["code"]) == (409, "state-conflict")


def test_the_regulator_may_revoke_a_suspended_registration(api: Api) -> None:
    app_id = _registration(api, "192.0.2.32/28")
    assert _post(api, "noc", app_id, "withdraw-attestation", {"reason": REASON}).status_code == 200
    assert _post(api, "ptcl-noc", app_id, "reattest").status_code == 404
    assert _post(api, "reg1", app_id, "reattest").status_code == 403
    revoked = _post(api, "reg1", app_id, "revoke", {"reason": "the line will not come back"})
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["state"] == "revoked"
    assert _post(api, "noc", app_id, "reattest").status_code == 409
