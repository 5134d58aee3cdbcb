"""The public lookup's fast path (vpnreg.web.lookup_fastpath) answers the plain
`GET /api/v1/ip/{address}` from the index exactly as the route does, without reaching the route,
and passes every other request to the app untouched. Both backends."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.harness import Api, same_answer
from tests.registry import flow
from vpnreg.registry.services.lookup_index import LookupIndexHolder
from vpnreg.registry.services.unit_of_work import Database
from vpnreg.web.api import records

#: Registered (v4, v6), the edges of a registration, and unregistered addresses.
ADDRESSES = (
    "192.0.2.1",
    "192.0.2.63",
    "192.0.2.64",
    "2001:db8:7::1",
    "2001:db8:8::1",
    "198.51.100.200",
    "0.0.0.0",
    "::",
)
#: The route treats an unknown query parameter as absent; the fast path takes no query at all.
VIA_ROUTE = "?via=route"


@pytest.fixture(scope="module")
def registered(api: Api) -> Api:
    database = Database(api.url)
    try:
        with database.session() as session:
            config, now = api.app.state.service_config, api.clock.now()
            flow.approved(session, api.world, config, now, [("192.0.2.0/26", [])])
            flow.approved(session, api.world, config, now, [("2001:db8:7::/48", [])])
    finally:
        database.dispose()
    api.app.state.feed.publisher.publish()
    return api


@pytest.fixture
def route_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every lookup that reached the route."""
    seen: list[str] = []
    real = records.answer_lookup

    async def counted(request: Any, db: Any, **kw: Any) -> Any:
        seen.append(kw["address"])
        return await real(request, db, **kw)

    monkeypatch.setattr(records, "answer_lookup", counted)
    return seen


def test_the_fast_path_answers_as_the_route_without_reaching_it(
    registered: Api, route_calls: list[str]
) -> None:
    public = registered.client("public")
    public.get(f"/api/v1/ip/192.0.2.1{VIA_ROUTE}")  # the route builds the index
    route_calls.clear()
    fast = {a: public.get(f"/api/v1/ip/{a}") for a in ADDRESSES}
    assert route_calls == []
    for address in ADDRESSES:
        routed = public.get(f"/api/v1/ip/{address}{VIA_ROUTE}")
        same_answer(fast[address], routed, "content-type", "content-length")
    assert route_calls == list(ADDRESSES)
    assert fast["192.0.2.1"].json()["cidr0_cidrs"] == [{"v4prefix": "192.0.2.0", "length": 26}]
    assert fast["2001:db8:7::1"].status_code == 200
    assert fast["192.0.2.64"].status_code == 404


def test_everything_else_reaches_the_route(registered: Api, route_calls: list[str]) -> None:
    public = registered.client("public")
    public.get("/api/v1/ip/192.0.2.1")
    route_calls.clear()
    bad_token = public.get(
        "/api/v1/ip/192.0.2.1", headers={"Authorization": "Bearer vpnreg_" + "x" * 43}
    )
    assert bad_token.status_code == 401
    at = public.get("/api/v1/ip/192.0.2.1", params={"at": "2026-01-15T10:00:00Z"})
    port = public.get("/api/v1/ip/192.0.2.1", params={"port": 80})
    assert at.status_code in (200, 404) and port.status_code == 200
    not_an_address = public.get("/api/v1/ip/not-an-ip")
    assert not_an_address.status_code == 400
    assert route_calls == ["192.0.2.1", "192.0.2.1", "not-an-ip"]


def test_with_no_index_ready_the_route_answers_and_builds_it(
    registered: Api, route_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registered.app.state, "lookup_index", LookupIndexHolder())
    public = registered.client("public")
    first = public.get("/api/v1/ip/192.0.2.1")
    second = public.get("/api/v1/ip/192.0.2.1")
    assert route_calls == ["192.0.2.1"]  # the second came from the index it built
    same_answer(second, first, "content-type", "content-length")
