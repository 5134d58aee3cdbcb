"""The portal's sign-up throttle: ten attempts an hour per address, whatever their outcome, and
signing in (as the new user or anyone else) does not reset the count (issue 16, item 10)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.portal.forms import csrf, sign_in, sign_out
from tests.portal.world import PortalWorld


def _sign_up(client: TestClient, username: str, password: str, number: str = "0098765") -> int:
    form = {
        "csrf_token": csrf(client, "/signup"),
        "name": f"Org {username}",
        "category": "call_centre",
        "registration_number": number,
        "national_id": "",
        "username": username,
        "password": password,
    }
    return client.post("/signup", data=form, follow_redirects=False).status_code


def test_a_successful_sign_in_does_not_reset_the_sign_up_count(
    client: TestClient, world: PortalWorld
) -> None:
    limit = world.settings.signup_limit_per_hour
    assert limit == 10
    for i in range(limit - 2):
        assert _sign_up(client, f"bad{i}", "x") == 422
    # A real account, signed in at once; then out, and an existing user signs in.
    assert _sign_up(client, "newcomer", "long enough password") == 303
    sign_out(client)
    sign_in(client, "ali")
    sign_out(client)
    assert _sign_up(client, "second", "long enough password", "0098766") == 303
    sign_out(client)
    blocked = client.post(
        "/signup",
        data={"csrf_token": csrf(client, "/signup"), "username": "third", "password": "p" * 20},
        follow_redirects=False,
    )
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 3600
