"""A revoked token is refused by every server process although each keeps the tokens it
checked in memory (vpnreg.web.token_cache, VPNREG_TOKEN_CACHE_S).

The revocation is made by another process (`vpnreg tokens revoke`, as an admin would). On
PostgreSQL the servers keep checked tokens for 600 s here, so a refusal within DEADLINE_S can
only come from the revoking transaction's NOTIFY; on SQLite, which has no NOTIFY, the cache's
time to live bounds it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.scaleout.cluster import (
    DEADLINE_S,
    Poll,
    Registry,
    polls_on_every_worker,
    server,
)
from vpnreg.registry.db import make_engine, make_session_factory
from vpnreg.registry.models import ApiToken

pytestmark = pytest.mark.slow

VPNREG = Path(sys.executable).with_name("vpnreg")
#: Where only a notification can bring the revocation in time.
LONG_CACHE_S = 600.0
#: SQLite: the cache's time to live, the bound on another process's revocation there.
SHORT_CACHE_S = 2.0


def _revoke_gateway_token(registry: Registry) -> float:
    """`vpnreg tokens revoke` the gateway's token; time.monotonic() once it returned."""
    engine = make_engine(registry.url)
    try:
        with make_session_factory(engine)() as session:
            token_id = session.scalars(select(ApiToken.id).where(ApiToken.name == "gw")).one()
    finally:
        engine.dispose()
    env = os.environ | {"VPNREG_DATABASE_URL": registry.url}
    done = subprocess.run(
        [str(VPNREG), "tokens", "revoke", str(token_id)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return time.monotonic()


def _refused_by_all(polls: list[Poll], since: float, within_s: float) -> None:
    """Every connection's server refuses the token (401) within `within_s` of `since`."""
    for poll in polls:
        while True:
            status, body = poll.get("/feed/v1/notify?since=0&wait=0")
            if status == 401:
                break
            assert status == 200, (status, body)
            assert time.monotonic() - since < within_s, f"worker {poll.worker()} still serves it"
            time.sleep(0.05)


def _served_twice(polls: list[Poll]) -> None:
    # twice: the second answer comes from the cache the first filled
    for poll in polls:
        for _ in range(2):
            assert poll.get("/feed/v1/notify?since=0&wait=0")[0] == 200


def test_postgresql_a_revocation_elsewhere_reaches_every_worker_through_notify(
    pg_registry: Registry,
) -> None:
    cache = {"VPNREG_TOKEN_CACHE_S": str(LONG_CACHE_S)}
    with server(pg_registry, "workers", workers=2, check_interval_s=30.0, env=cache) as many:
        polls = polls_on_every_worker(many, pg_registry.gateway_token)
        _served_twice(polls)
        revoked_at = _revoke_gateway_token(pg_registry)
        _refused_by_all(polls, revoked_at, DEADLINE_S)
        for poll in polls:
            poll.close()


def test_sqlite_a_revocation_elsewhere_is_refused_within_the_cache_time(
    sqlite_registry: Registry,
) -> None:
    registry = sqlite_registry
    cache = {"VPNREG_TOKEN_CACHE_S": str(SHORT_CACHE_S)}
    with server(registry, "single", check_interval_s=1.0, env=cache) as single:
        polls = [Poll(single, registry.gateway_token) for _ in range(2)]
        _served_twice(polls)
        revoked_at = _revoke_gateway_token(registry)
        _refused_by_all(polls, revoked_at, SHORT_CACHE_S + 2.0)
        for poll in polls:
            poll.close()
