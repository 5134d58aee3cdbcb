"""What a browser does with the portal's forms, for TestClient tests: fetch a page for its CSRF
token, sign in, apply, take a reviewer's decision, sign out."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.portal.world import PASSWORD, PortalWorld


def csrf(client: TestClient, path: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', client.get(path).text)
    assert match is not None, f"no CSRF field on {path}"
    return match.group(1)


def sign_in(client: TestClient, username: str) -> None:
    token = csrf(client, "/login")
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303


def apply(client: TestClient, world: PortalWorld, *prefixes: str) -> int:
    token = csrf(client, "/apply")
    response = client.post(
        "/apply",
        data={
            "csrf_token": token,
            "isp_id": str(world.isp_id),
            "prefix": list(prefixes),
            "peers": [""] * len(prefixes),
            "intent": "submit",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    match = re.match(r"/applications/(\d+)\?done=submitted", response.headers["location"])
    assert match is not None
    return int(match.group(1))


def sign_out(client: TestClient) -> None:
    client.post("/logout", data={"csrf_token": csrf(client, "/stats")})


def move(client: TestClient, who: str, app_id: int, action: str, version: int) -> None:
    sign_in(client, who)
    response = client.post(
        f"/queue/{app_id}/decide",
        data={
            "csrf_token": csrf(client, f"/queue/{app_id}"),
            "action": action,
            "version": str(version),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    sign_out(client)
