"""Locust scenario for bench_portal_load: signed-in applicants of the demo registry mixing
lookups, list pages and submissions against a vpnreg server on 127.0.0.1.

Each simulated client signs in as one demo applicant (applicant1..applicant50, password
"demo-password") through the login form, keeps its session cookie, and takes the CSRF token
from GET /api/v1/me for its POSTs. Task weights: lookups 6 (public RDAP-style JSON 4, HTMX
lookup fragment 2), list pages 3 (my applications page, API list, statistics page), submissions
1 (create through the JSON API, then submit it with If-Match).

The lookup tasks carry the tag "lookup" (`--tags lookup` runs them alone).

Run by bench/bench_portal_load.py; by hand:
    locust -f bench/locustfile.py --headless -u 50 -r 25 -t 60s --host http://127.0.0.1:PORT
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import random
import re
import threading
from pathlib import Path

from locust import between, tag, task
from locust.contrib.fasthttp import FastHttpUser

PASSWORD = "demo-password"  # noqa: S105 (the demo loader's published password)
APPLICANTS = 50
CSRF_FIELD = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
#: The demo registers /28s of the documentation ranges; lookups hit and miss them.
LOOKUP_BLOCKS = [
    ipaddress.ip_network(b) for b in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
]
#: Sessions signed in beforehand (bench_portal_load does it, so the argon2 cost of 50 sign-ins
#: does not land in the measured mix): a JSON list of {username, cookie, csrf}.
SESSIONS_FILE = os.environ.get("VPNREG_BENCH_SESSIONS")
SESSION_COOKIE = "vpnreg_session"
_numbers = itertools.count(0)
_lock = threading.Lock()
_sessions: list[dict[str, str]] = (
    json.loads(Path(SESSIONS_FILE).read_text()) if SESSIONS_FILE else []
)


def _next_number() -> int:
    with _lock:
        return next(_numbers)


def _random_address(rng: random.Random) -> str:
    block = rng.choice(LOOKUP_BLOCKS)
    return str(block[rng.randrange(block.num_addresses)])


class Applicant(FastHttpUser):
    """One signed-in applicant with a think time of 0.5-1.5 s between requests."""

    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.rng = random.Random()
        number = _next_number()
        if _sessions:
            signed_in = _sessions[number % len(_sessions)]
            self.username = signed_in["username"]
            self.headers = {
                "Cookie": f"{SESSION_COOKIE}={signed_in['cookie']}",
                "X-CSRF-Token": signed_in["csrf"],
            }
        else:
            self.username = f"applicant{number % APPLICANTS + 1}"
            self.headers = self._sign_in()
        isps = self.client.get("/api/v1/isps", headers=self.headers, name="/api/v1/isps").json()
        self.isp_id = int(isps[0]["id"])

    def _sign_in(self) -> dict[str, str]:
        page = self.client.get("/login", name="/login [form]")
        match = CSRF_FIELD.search(page.text or "")
        if match is None:
            raise RuntimeError("no CSRF token on /login")
        with self.client.post(
            "/login",
            data={"username": self.username, "password": PASSWORD, "csrf_token": match.group(1)},
            allow_redirects=False,
            catch_response=True,
            name="/login [post]",
        ) as response:
            if response.status_code != 303:
                response.failure(f"sign-in as {self.username}: {response.status_code}")
                raise RuntimeError(f"cannot sign in as {self.username}")
        me = self.client.get("/api/v1/me", name="/api/v1/me").json()
        return {"X-CSRF-Token": str(me["csrf_token"])}

    # --- lookups ---

    @tag("lookup")
    @task(4)
    def lookup_api(self) -> None:
        address = _random_address(self.rng)
        with self.client.get(
            f"/api/v1/ip/{address}",
            headers=self.headers,
            name="lookup: GET /api/v1/ip/{address}",
            catch_response=True,
        ) as response:
            if response.status_code in (200, 404):
                response.success()

    @tag("lookup")
    @task(2)
    def lookup_fragment(self) -> None:
        self.client.get(
            f"/lookup?ip={_random_address(self.rng)}",
            headers={**self.headers, "HX-Request": "true"},
            name="lookup: GET /lookup (HTMX fragment)",
        )

    # --- list pages ---

    @task(1)
    def my_applications(self) -> None:
        self.client.get(
            "/applications", headers=self.headers, name="list: GET /applications (page)"
        )

    @task(1)
    def api_list(self) -> None:
        self.client.get(
            "/api/v1/applications?limit=20",
            headers=self.headers,
            name="list: GET /api/v1/applications",
        )

    @task(1)
    def stats(self) -> None:
        self.client.get("/stats", headers=self.headers, name="list: GET /stats (page)")

    # --- submissions ---

    @task(1)
    def submit(self) -> None:
        # Through the JSON API (the apply form also wants category documents from some demo
        # organisations): create, then submit with the version as If-Match.
        prefix = f"2001:db8:{self.rng.randrange(0x8000, 0x10000):x}::/48"
        headers = self.headers
        with self.client.post(
            "/api/v1/applications",
            json={"isp_id": self.isp_id, "prefixes": [{"prefix": prefix, "peers": []}]},
            headers=headers,
            catch_response=True,
            name="submit: POST /api/v1/applications",
        ) as created:
            if created.status_code != 201:
                created.failure(f"create answered {created.status_code}")
                return
            body = created.json()
        etag = created.headers.get("ETag") or f'"{body["version"]}"'
        with self.client.post(
            f"/api/v1/applications/{body['id']}/submit",
            headers={**headers, "If-Match": etag},
            catch_response=True,
            name="submit: POST /api/v1/applications/{id}/submit",
        ) as submitted:
            if submitted.status_code != 200:
                submitted.failure(f"submit answered {submitted.status_code}")
