"""PostgreSQL restarted under the real server (`vpnreg serve`) while applicants create
applications through the API (issue 16, Faults).

The cluster is a private one (not the session's shared server, which other tests use), stopped
for a few seconds and started again while ten clients keep creating. During the outage every
request is answered 503 problem+json with Retry-After, never 500; afterwards the server answers
again by itself (no restart of `vpnreg serve`). Each client sends every create with an
`Idempotency-Key` and, after a 503 or a lost connection, sends the same request again with the
same key (a create whose connection broke at commit may or may not have been made). At the end
every prefix has exactly one application: nothing lost, nothing duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.concurrency.server import prepare, vpnreg_serve
from tests.fixtures.postgres import PostgresServer, PostgresUnavailable, throwaway_cluster
from vpnreg.registry.db import make_engine, make_session_factory
from vpnreg.registry.models import ApplicationPrefix

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CLIENTS = 10
#: How long PostgreSQL stays down.
OUTAGE_S = 4.0
#: Creates each client makes once the server is back, to show it recovered.
AFTER_RESTART = 3


@pytest.fixture
def cluster() -> Iterator[PostgresServer]:
    """A cluster of this test's own, so restarting it disturbs no other test."""
    try:
        with throwaway_cluster() as server:
            yield server
    except PostgresUnavailable as err:
        pytest.fail(str(err))


@dataclass
class Seen:
    """What the clients were answered."""

    statuses: Counter[int] = field(default_factory=Counter)
    refusals: list[httpx.Response] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    after_restart: int = 0
    #: Requests whose connection broke before an answer (sent again with the same key).
    dropped: int = 0


async def _create(
    client: httpx.AsyncClient, base: str, isp_id: int, prefix: str, seen: Seen
) -> None:
    """Create, retrying the very same request (same Idempotency-Key) until it is answered."""
    body = {"isp_id": isp_id, "prefixes": [{"prefix": prefix, "peers": []}]}
    headers = {"Idempotency-Key": f"create-{prefix}"}
    while True:
        try:
            response = await client.post(f"{base}/api/v1/applications", json=body, headers=headers)
        except httpx.TransportError:
            seen.dropped += 1
            await asyncio.sleep(1.0)
            continue
        seen.statuses[response.status_code] += 1
        if response.status_code == 201:
            return
        if response.status_code != 503:
            seen.failures.append(f"create {prefix}: {response.status_code} {response.text}")
            return
        seen.refusals.append(response)
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))


async def _load(
    base: str, server: PostgresServer, isp_id: int, tokens: list[str]
) -> tuple[Seen, list[str]]:
    seen = Seen()
    tried: list[str] = []
    restarted = asyncio.Event()

    async def applicant(n: int, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=60, headers=headers) as client:
            k = 0
            done_after = 0
            while done_after < AFTER_RESTART and k < 25:
                was_back = restarted.is_set()
                prefix = f"198.51.100.{n * 25 + k}/32"
                tried.append(prefix)
                await _create(client, base, isp_id, prefix, seen)
                k += 1
                if was_back:
                    done_after += 1
                    seen.after_restart += 1
                await asyncio.sleep(0.05)

    async def restart() -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(server.start)
        restarted.set()

    await asyncio.gather(restart(), *(applicant(n, t) for n, t in enumerate(tokens)))
    return seen, tried


def test_a_postgres_restart_under_load_answers_503_and_loses_or_duplicates_nothing(
    cluster: PostgresServer, tmp_path: Path
) -> None:
    url = cluster.url(cluster.create_database("restart"))
    registry = prepare(url, applicants=CLIENTS)
    with vpnreg_serve(url, tmp_path) as base:
        seen, tried = asyncio.run(
            _load(base, cluster, registry.isp_id, [t for _, t in registry.tokens])
        )
        with contextlib.suppress(httpx.HTTPError):
            health = httpx.get(f"{base}/healthz", timeout=10).status_code
    log = (tmp_path / "server.log").read_text()

    assert not seen.failures, seen.failures[:5]
    assert set(seen.statuses) <= {200, 201, 503}, seen.statuses
    assert seen.refusals, "no request met the outage: the restart proved nothing"
    for refused in seen.refusals:
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["status"] == 503
    assert seen.after_restart == CLIENTS * AFTER_RESTART
    assert health == 200
    assert "Traceback" not in log and " 500 " not in log, log[-3000:]

    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            stored = Counter(session.scalars(select(ApplicationPrefix.prefix)))
    finally:
        engine.dispose()
    assert sorted(stored) == sorted(tried), "an application was lost or one was never tried"
    duplicated = {prefix: n for prefix, n in stored.items() if n > 1}
    assert not duplicated, duplicated
