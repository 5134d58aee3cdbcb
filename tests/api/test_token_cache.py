"""Checked API tokens are answered from memory (vpnreg.web.token_cache) and forgotten as soon
as anything may have ended them: a revocation or a user change committed in this process, the
token's own expiry, the cache's time to live. Other processes: tests/scaleout/
test_token_revocation.py."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from tests.api.harness import Api
from vpnreg.registry import credential_changes
from vpnreg.registry.models import ApiToken
from vpnreg.registry.services.directory import set_user_role
from vpnreg.registry.services.tokens import create_token, revoke_token
from vpnreg.registry.services.unit_of_work import Database
from vpnreg.web import auth
from vpnreg.web.token_cache import TokenCache

NOW = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- the cache on its own ---------------------------------------------------------------------


def test_an_entry_lives_for_its_time_to_live() -> None:
    clock = FakeMonotonic()
    cache: TokenCache[str] = TokenCache(10.0, monotonic=clock)
    cache.put("t", "gateway", generation=credential_changes.generation(), expires_at=None)
    clock.now += 9.9
    assert cache.get("t", NOW) == "gateway"
    clock.now += 0.2
    assert cache.get("t", NOW) is None
    assert len(cache) == 0


def test_an_entry_half_its_time_old_is_handed_out_for_one_check() -> None:
    clock = FakeMonotonic()
    cache: TokenCache[str] = TokenCache(10.0, monotonic=clock)
    cache.put("t", "gateway", generation=credential_changes.generation(), expires_at=None)
    assert not cache.claim_refresh("t")  # young
    clock.now += 5.0
    assert cache.claim_refresh("t")
    assert not cache.claim_refresh("t")  # one check at a time
    assert cache.get("t", NOW) == "gateway"  # still answered meanwhile
    cache.release("t")
    assert cache.claim_refresh("t")  # released unchecked: due again
    cache.put("t", "gateway", generation=credential_changes.generation(), expires_at=None)
    cache.release("t")
    assert not cache.claim_refresh("t")  # checked: young again
    clock.now += 9.9
    assert cache.get("t", NOW) == "gateway"  # its time counts from the check
    cache.forget("t")
    assert cache.get("t", NOW) is None and not cache.claim_refresh("t")


def test_a_credentials_change_makes_every_entry_stale() -> None:
    cache: TokenCache[str] = TokenCache(10.0, monotonic=FakeMonotonic())
    cache.put("t", "gateway", generation=credential_changes.generation(), expires_at=None)
    credential_changes.changed()
    assert cache.get("t", NOW) is None


def test_a_change_during_the_check_makes_the_entry_stale_at_once() -> None:
    cache: TokenCache[str] = TokenCache(10.0, monotonic=FakeMonotonic())
    taken = cache.generation()
    credential_changes.changed()  # committed while the database was being asked
    cache.put("t", "gateway", generation=taken, expires_at=None)
    assert cache.get("t", NOW) is None


def test_an_entry_ends_with_its_token() -> None:
    cache: TokenCache[str] = TokenCache(10.0, monotonic=FakeMonotonic())
    ends = NOW + dt.timedelta(seconds=1)
    cache.put("t", "gateway", generation=credential_changes.generation(), expires_at=ends)
    assert cache.get("t", NOW) == "gateway"
    assert cache.get("t", ends) is None


def test_a_time_to_live_of_zero_keeps_nothing() -> None:
    cache: TokenCache[str] = TokenCache(0.0, monotonic=FakeMonotonic())
    cache.put("t", "gateway", generation=credential_changes.generation(), expires_at=None)
    assert cache.get("t", NOW) is None and len(cache) == 0


def test_the_cache_holds_no_token() -> None:
    cache: TokenCache[str] = TokenCache(10.0, monotonic=FakeMonotonic())
    secret = "vpnreg_" + "s" * 40
    cache.put(secret, "gateway", generation=credential_changes.generation(), expires_at=None)
    assert secret.encode() not in repr(cache._entries).encode()
    assert cache.get(secret + "x", NOW) is None


# --- in the app (both backends) ---------------------------------------------------------------


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every time the app asks the database about a token."""
    seen: list[str] = []
    real = auth.authenticate_token

    def counted(session: Any, *, token: str, now: dt.datetime) -> Any:
        seen.append(token)
        return real(session, token=token, now=now)

    monkeypatch.setattr(auth, "authenticate_token", counted)
    return seen


@pytest.fixture
def database(api: Api) -> Iterator[Database]:
    db = Database(api.url)
    try:
        yield db
    finally:
        db.dispose()


def _token(database: Database, api: Api, **who: Any) -> tuple[int, str]:
    with database.session() as session:
        token, secret = create_token(
            session, name="cached", actor="cli:admin", now=api.clock.now(), **who
        )
        return token.id, secret


def _bearer(api: Api, secret: str) -> TestClient:
    client = api.new_client()
    client.headers["Authorization"] = f"Bearer {secret}"
    return client


def _me(client: TestClient) -> Callable[[], tuple[int, Any]]:
    def get() -> tuple[int, Any]:
        answer = client.get("/api/v1/me")
        return answer.status_code, answer.json()

    return get


def test_a_token_is_checked_once_then_answered_from_memory(
    api: Api, database: Database, checks: list[str]
) -> None:
    _, secret = _token(database, api, role="gateway")
    me = _me(_bearer(api, secret))
    for _ in range(5):
        assert me()[0] == 200
    assert checks.count(secret) == 1


def test_with_the_cache_off_every_request_asks_the_database(
    api: Api, database: Database, checks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api.app.state, "token_cache", TokenCache(0.0))
    _, secret = _token(database, api, role="gateway")
    me = _me(_bearer(api, secret))
    for _ in range(3):
        assert me()[0] == 200
    assert checks.count(secret) == 3


def test_a_revocation_is_refused_at_once(api: Api, database: Database, checks: list[str]) -> None:
    token_id, secret = _token(database, api, role="gateway")
    me = _me(_bearer(api, secret))
    assert me()[0] == 200 and me()[0] == 200
    with database.session() as session:
        revoke_token(session, token_id=token_id, actor="cli:admin", now=api.clock.now())
    assert me()[0] == 401


def test_a_user_bound_token_follows_its_users_new_role_at_once(
    api: Api, database: Database
) -> None:
    user = api.world.regulator2
    _, secret = _token(database, api, user_id=user.id)
    me = _me(_bearer(api, secret))
    assert me()[1]["role"] == "regulator"

    def set_role(role: str) -> None:
        with database.session() as session:
            set_user_role(
                session, user_id=user.id, role=role, actor="cli:admin", now=api.clock.now()
            )

    try:
        set_role("auditor")
        assert me()[1]["role"] == "auditor"
    finally:
        set_role("regulator")
    assert me()[1]["role"] == "regulator"


def test_an_unknown_token_is_never_kept(api: Api, checks: list[str]) -> None:
    me = _me(_bearer(api, "vpnreg_" + "u" * 43))
    assert me()[0] == 401 and me()[0] == 401
    assert len(checks) == 2


def test_a_token_in_use_is_checked_again_in_the_background(
    api: Api, database: Database, checks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half its time to live on, a request still answered from memory starts a check of the
    token in the database; a token ended where this process could not hear of it (another
    process on SQLite: here a plain UPDATE) is then refused, before its time is up."""
    clock = FakeMonotonic()
    monkeypatch.setattr(
        api.app.state, "token_cache", TokenCache(10.0, monotonic=clock), raising=False
    )
    token_id, secret = _token(database, api, role="gateway")
    me = _me(_bearer(api, secret))
    assert me()[0] == 200 and checks.count(secret) == 1
    with database.session() as session:
        session.execute(
            update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=api.clock.now())
        )
        session.commit()
    assert me()[0] == 200 and checks.count(secret) == 1  # young: from memory, not checked
    clock.now += 6.0
    assert me()[0] == 200  # from memory, and the check starts
    deadline = time.monotonic() + 10
    while checks.count(secret) < 2 or len(api.app.state.token_cache):
        assert time.monotonic() < deadline, "no background check forgot the token"
        time.sleep(0.02)
    assert me()[0] == 401
