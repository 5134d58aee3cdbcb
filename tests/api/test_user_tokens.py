"""User-bound API tokens on the JSON API (both backends): a machine takes a user's review steps
with the user's role and scope, without CSRF; role-only tokens still cannot."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.harness import Api
from vpnreg.registry.services.directory import set_user_active
from vpnreg.registry.services.tokens import create_token, revoke_token
from vpnreg.registry.services.unit_of_work import Database


def _token(api: Api, *, user_id: int | None = None, role: str | None = None) -> tuple[int, str]:
    database = Database(api.url)
    try:
        with database.session() as session:
            token, secret = create_token(
                session,
                name="automation",
                role=role,
                user_id=user_id,
                actor="cli:admin",
                now=api.clock.now(),
            )
            return token.id, secret
    finally:
        database.dispose()


def _bearer(api: Api, secret: str) -> TestClient:
    client = api.new_client()  # no cookie and no CSRF header: the token is all it has
    client.headers["Authorization"] = f"Bearer {secret}"
    return client


def _submitted(api: Api, prefix: str) -> object:
    app_id = api.create("ali", [prefix])["id"]
    api.step("ali", app_id, "submit")
    return app_id


def test_an_isp_token_verifies_an_application_naming_its_isp(api: Api) -> None:
    app_id = _submitted(api, "198.51.100.0/28")
    robot = _bearer(api, _token(api, user_id=api.world.isp_user.id)[1])
    current = robot.get(f"/api/v1/applications/{app_id}")
    assert current.status_code == 200, current.text
    etag = current.headers["ETag"]
    verified = robot.post(f"/api/v1/applications/{app_id}/verify", headers={"If-Match": etag})
    assert verified.status_code == 200, verified.text
    assert verified.json()["state"] == "isp_verified"
    assert verified.headers["ETag"] not in ("", etag)
    # The step is the user's: the timeline and the audit log name noc, not a token.
    timeline = api.client("ali").get(f"/api/v1/applications/{app_id}/timeline").json()
    assert [(t["action"], t["actor"]) for t in timeline][-1] == ("verify", "noc")
    again = robot.post(f"/api/v1/applications/{app_id}/verify", headers={"If-Match": etag})
    assert again.status_code == 412


def test_an_isp_token_is_refused_on_an_application_naming_another_isp(api: Api) -> None:
    app_id = _submitted(api, "198.51.100.16/28")
    robot = _bearer(api, _token(api, user_id=api.world.other_isp_user.id)[1])
    assert robot.get(f"/api/v1/applications/{app_id}").status_code == 404
    refused = robot.post(f"/api/v1/applications/{app_id}/verify", headers={"If-Match": '"2"'})
    assert refused.status_code == 404
    assert api.client("ali").get(f"/api/v1/applications/{app_id}").json()["state"] == "submitted"


def test_an_applicants_token_creates_and_submits_without_csrf(api: Api) -> None:
    robot = _bearer(api, _token(api, user_id=api.world.applicant.id)[1])
    me = robot.get("/api/v1/me").json()
    assert me == {
        "name": "ali",
        "role": "applicant",
        "via": "token",
        "organisation_id": api.world.soft_org,
        "isp_id": None,
        "sector_body_id": None,
        "csrf_token": None,
    }
    created = robot.post(
        "/api/v1/applications",
        json={"isp_id": api.world.isp, "prefixes": [{"prefix": "198.51.100.32/28", "peers": []}]},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["organisation_id"] == api.world.soft_org
    submitted = robot.post(
        f"/api/v1/applications/{body['id']}/submit", headers={"If-Match": created.headers["ETag"]}
    )
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["state"] == "submitted"
    # The applicant's scope holds: another organisation's application is not there for it.
    other = api.create("bina", ["198.51.100.48/28"])["id"]
    assert robot.get(f"/api/v1/applications/{other}").status_code == 404


def test_an_applicants_token_cannot_take_the_isps_step(api: Api) -> None:
    app_id = _submitted(api, "198.51.100.80/28")
    robot = _bearer(api, _token(api, user_id=api.world.applicant.id)[1])
    refused = robot.post(f"/api/v1/applications/{app_id}/verify", headers={"If-Match": '"2"'})
    assert refused.status_code == 403
    assert refused.json()["code"] == "role-not-allowed"


def test_a_role_only_token_still_cannot_take_a_step(api: Api) -> None:
    app_id = _submitted(api, "198.51.100.96/28")
    robot = _bearer(api, _token(api, role="isp")[1])
    refused = robot.post(f"/api/v1/applications/{app_id}/verify", headers={"If-Match": '"2"'})
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    gateway = api.client("gateway").post(
        f"/api/v1/applications/{app_id}/verify", headers={"If-Match": '"2"'}
    )
    assert gateway.status_code == 403
    assert api.client("ali").get(f"/api/v1/applications/{app_id}").json()["state"] == "submitted"


def test_a_token_stops_when_revoked_or_when_its_user_is_disabled(api: Api) -> None:
    token_id, secret = _token(api, user_id=api.world.regulator2.id)
    robot = _bearer(api, secret)
    assert robot.get("/api/v1/me").json()["name"] == "reg2"
    database = Database(api.url)

    def set_active(active: bool) -> None:
        with database.session() as session:
            set_user_active(
                session,
                user_id=api.world.regulator2.id,
                active=active,
                actor="cli:admin",
                now=api.clock.now(),
            )

    try:
        set_active(False)
        assert robot.get("/api/v1/me").status_code == 401
        set_active(True)
        assert robot.get("/api/v1/me").status_code == 200
        with database.session() as session:
            revoke_token(session, token_id=token_id, actor="cli:admin", now=api.clock.now())
        gone = robot.get("/api/v1/me")
        assert gone.status_code == 401
        assert gone.headers["WWW-Authenticate"] == "Bearer"
    finally:
        database.dispose()
