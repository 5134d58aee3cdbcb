"""A running API over a real database (SQLite or PostgreSQL) with a small world and logins.

Used by tests/api and by the authorization matrix in tests/web: one app per backend and module,
one signed-in TestClient per role, a gateway API token, and helpers to create applications.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.postgres import PostgresServer
from tests.registry.conftest import PASSWORD, World, add_user, build_world, make_config
from vpnreg.clock import FrozenClock
from vpnreg.core.review import Role
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.models import User
from vpnreg.registry.services.tokens import create_token
from vpnreg.settings import Settings
from vpnreg.web.app import create_app

START = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
SECRET = "s" * 40
CSRF_FIELD = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


@dataclass
class Api:
    """The app, its clock and world, and a client per caller ("public" has no login)."""

    app: FastAPI
    clock: FrozenClock
    world: World
    url: str
    gateway_token: str
    clients: dict[str, TestClient] = field(default_factory=dict)
    usernames: dict[str, str] = field(default_factory=dict)
    #: Every login's user id, by username.
    user_ids: dict[str, int] = field(default_factory=dict)

    def client(self, who: str) -> TestClient:
        return self.clients[who]

    def new_client(self) -> TestClient:
        return TestClient(self.app, raise_server_exceptions=False)

    def create(
        self, who: str = "ali", prefixes: list[str] | None = None, isp: int | None = None
    ) -> dict[str, object]:
        response = self.client(who).post(
            "/api/v1/applications",
            json={
                "isp_id": isp or self.world.isp,
                "prefixes": [{"prefix": p, "peers": []} for p in (prefixes or ["192.0.2.0/28"])],
            },
        )
        assert response.status_code == 201, response.text
        body: dict[str, object] = response.json()
        return body

    def step(
        self, who: str, app_id: object, action: str, body: dict[str, object] | None = None
    ) -> dict[str, object]:
        client = self.client(who)
        current = client.get(f"/api/v1/applications/{app_id}")
        assert current.status_code == 200, current.text
        response = client.post(
            f"/api/v1/applications/{app_id}/{action}",
            json=body,
            headers={"If-Match": current.headers["ETag"]},
        )
        assert response.status_code in (200, 201), response.text
        result: dict[str, object] = response.json()
        return result


def login(client: TestClient, username: str, password: str = PASSWORD) -> None:
    """Sign in through the form as a browser does, then keep the CSRF token as a header."""
    client.headers.pop("X-CSRF-Token", None)
    page = client.get("/login")
    match = CSRF_FIELD.search(page.text)
    assert match is not None
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": match.group(1)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    me = client.get("/api/v1/me").json()
    assert me["name"] == username
    client.headers["X-CSRF-Token"] = me["csrf_token"]


def database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('api') / 'registry.db'}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = server.create_database("api")
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


def build_api(url: str, data_dir: Path, *, read_url: str | None = None) -> Api:
    """The API over `url` (migrated and given its world here); `read_url`: its read replica
    (VPNREG_DATABASE_READ_URL, ADR 0017)."""
    upgrade(url)
    clock = FrozenClock(START)
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            world = build_world(session, clock.now(), make_config())
            auditor = add_user(session, "audit", Role.AUDITOR, clock.now())
            admin = add_user(session, "root", Role.ADMIN, clock.now())
            user_ids = {
                user.username: user.id
                for user in (*vars(world).values(), auditor, admin)
                if isinstance(user, User)
            }
            _, gateway_token = create_token(
                session, name="gw1", role=Role.GATEWAY, actor="cli:admin", now=clock.now()
            )
    finally:
        engine.dispose()
    settings = Settings(
        secret_key=SECRET,
        database_url=url,
        data_dir=data_dir,
        allow_documentation_prefixes=True,
        feed_key=data_dir / "feed.key",
        database_read_url=read_url,
    )
    app = create_app(settings, clock=clock)
    api = Api(
        app=app,
        clock=clock,
        world=world,
        url=url,
        gateway_token=gateway_token,
        user_ids=user_ids,
    )
    usernames = {
        "applicant": "ali",
        "isp": "noc",
        "sector_body": "pasha",
        "regulator": "reg1",
        "auditor": "audit",
        "admin": "root",
        # Second users of a kind, for cross-organisation, cross-ISP and second-reviewer cases.
        "ali": "ali",
        "bina": "bina",
        "noc": "noc",
        "ptcl-noc": "ptcl-noc",
        "pasha": "pasha",
        "reg1": "reg1",
        "reg2": "reg2",
    }
    logged_in: dict[str, TestClient] = {}
    for who, username in usernames.items():
        if username not in logged_in:
            client = api.new_client()
            login(client, username)
            logged_in[username] = client
        api.clients[who] = logged_in[username]
    api.usernames = usernames
    api.clients["public"] = api.new_client()
    gateway = api.new_client()
    gateway.headers["Authorization"] = f"Bearer {gateway_token}"
    api.clients["gateway"] = gateway
    return api


def relogin(api: Api) -> None:
    """Sign every person's client in again (after a test that called /logout as them)."""
    done: set[str] = set()
    for who, username in api.usernames.items():
        if username in done:
            continue
        login(api.clients[who], username)
        done.add(username)


def same_answer(fast: httpx.Response, routed: httpx.Response, *headers: str) -> None:
    """A fast path's answer is the route's: status, body, and these headers (with the security
    headers every answer carries)."""
    assert fast.status_code == routed.status_code
    assert fast.content == routed.content
    for header in (*headers, "x-frame-options", "content-security-policy"):
        assert fast.headers.get(header) == routed.headers.get(header), header
