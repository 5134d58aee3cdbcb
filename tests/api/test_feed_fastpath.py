"""The gateways' /feed/v1/delta on its fast path (vpnreg.web.feed_fastpath): a gateway whose
token is in the cache gets the route's own answer without the route; everything else reaches
the route and its checks. Both backends, on the whole app."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.harness import Api, same_answer
from tests.registry import flow
from vpnreg.registry.services.tokens import create_token, revoke_token
from vpnreg.registry.services.unit_of_work import Database
from vpnreg.web import feed_fastpath

#: The route ignores a parameter it does not know; the fast path passes such a request on.
VIA_ROUTE = {"via": "route"}


@pytest.fixture
def database(api: Api) -> Any:
    db = Database(api.url)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def route_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every feed request the fast path passed on to the route."""
    seen: list[str] = []
    real = feed_fastpath._answer

    async def counted(scope: Any) -> Any:
        answer = await real(scope)
        if answer is None:
            seen.append(scope["path"])
        return answer

    monkeypatch.setattr(feed_fastpath, "_answer", counted)
    return seen


def _gateway(api: Api, database: Database, role: str = "gateway") -> tuple[int, TestClient]:
    with database.session() as session:
        token, secret = create_token(
            session, name=f"fast-{role}", role=role, actor="cli:admin", now=api.clock.now()
        )
    client = api.new_client()
    client.headers["Authorization"] = f"Bearer {secret}"
    return token.id, client


def _held(api: Api) -> tuple[str, int]:
    key = api.app.state.feed.publisher.held_key()
    assert key is not None
    return key


def test_a_cached_gateway_gets_the_routes_answer_without_the_route(
    api: Api, database: Database, route_calls: list[str]
) -> None:
    feed = api.app.state.feed
    feed.publisher.publish()
    _, gateway = _gateway(api, database)
    session, first = _held(api)
    assert gateway.get("/feed/v1/delta", params={"since": first, "session": session}).is_success
    assert route_calls == ["/feed/v1/delta"]  # an unknown token: the route checks it
    with database.session() as db:
        flow.approved(db, api.world, api.app.state.service_config, api.clock.now(),
                      [("198.51.100.64/26", [])])  # fmt: skip
    feed.publisher.publish()
    _, now = _held(api)
    asks: list[dict[str, Any]] = [
        {"since": first, "session": session},  # a delta
        {"since": now, "session": session, "wait": 0},  # nothing new
        {"since": first, "session": "f" * 32},  # another session: a reset
        {"since": now + 3, "session": session, "wait": 0},  # ahead, no wait: a reset
    ]
    route_calls.clear()
    fast = [gateway.get("/feed/v1/delta", params=p) for p in asks]
    assert route_calls == []
    for params, answer in zip(asks, fast, strict=True):
        routed = gateway.get("/feed/v1/delta", params=params | VIA_ROUTE)
        same_answer(answer, routed, "content-type", "etag")
    assert len(route_calls) == len(asks)
    assert len(fast[0].json()["deltas"]) == 1 and fast[2].json()["reset"] is True


def test_everything_else_reaches_the_route(
    api: Api, database: Database, route_calls: list[str]
) -> None:
    api.app.state.feed.publisher.publish()
    session, serial = _held(api)
    query = {"since": serial, "session": session}
    token_id, gateway = _gateway(api, database)
    _, regulator = _gateway(api, database, role="regulator")
    for client in (gateway, regulator):
        client.get("/feed/v1/delta", params=query)  # checked once: in the cache now
    route_calls.clear()

    assert regulator.get("/feed/v1/delta", params=query).status_code == 403
    assert gateway.get("/feed/v1/delta", params={"since": -1}).status_code == 422
    assert gateway.get("/feed/v1/delta", params=query | {"since": "1e3"}).status_code == 422
    malformed = api.new_client().get(
        "/feed/v1/delta", params=query, headers={"Authorization": "Basic x"}
    )
    assert malformed.status_code == 401
    with database.session() as db:
        revoke_token(db, token_id=token_id, actor="cli:admin", now=api.clock.now())
    assert gateway.get("/feed/v1/delta", params=query).status_code == 401
    assert route_calls == ["/feed/v1/delta"] * 5
