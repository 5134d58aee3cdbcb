"""The CI soak (issue 16, Load and soak): 50 clients for 60 s against the real server on
PostgreSQL, the portal load mix's shape (lookups, the HTMX lookup fragment, lists, the statistics
page, create + submit through the API) with a think time of 0.5-1.5 s each. Every request is
answered as expected (no 5xx, no dropped connection), and the server's memory after the run is
within a generous bound of its memory after warm-up. The 10-minute run with its figures (p99,
memory curve) is the benchmark bench/bench_soak.py; this test asserts behaviour only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import random
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.concurrency.server import prepare, serve_process

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CLIENTS = 50
SECONDS = 60.0
WARM_UP_S = 10.0
#: The server's resident memory at the end may be at most this multiple of its warm figure:
#: a leak of the request path would pass it within a minute of this load; the precise growth
#: is the benchmark's.
MEMORY_BOUND = 1.5
#: Task weights of the mix (bench/locustfile.py's shape).
WEIGHTS = {"lookup": 4, "fragment": 2, "list": 2, "stats": 1, "create": 1}
_FREE = itertools.chain.from_iterable(
    ipaddress.ip_network(block).hosts()
    for block in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


async def _soak(base: str, isp_id: int, tokens: list[str]) -> tuple[Counter[str], list[str]]:
    done: Counter[str] = Counter()
    wrong: list[str] = []
    end = time.monotonic() + SECONDS

    def expect(what: str, response: httpx.Response, *statuses: int) -> bool:
        if response.status_code not in statuses:
            wrong.append(f"{what}: {response.status_code} {response.text[:200]}")
            return False
        done[what] += 1
        return True

    async def client(n: int, token: str) -> None:
        rng = random.Random(n)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
            while time.monotonic() < end:
                await asyncio.sleep(rng.uniform(0.5, 1.5))
                task = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
                address = f"203.0.113.{rng.randrange(256)}"
                try:
                    if task == "lookup":
                        # Not registered is an RDAP 404: an answer, not an error.
                        expect(task, await http.get(f"/api/v1/ip/{address}"), 200, 404)
                    elif task == "fragment":
                        fragment = await http.get(
                            "/lookup", params={"ip": address}, headers={"HX-Request": "true"}
                        )
                        expect(task, fragment, 200)
                    elif task == "list":
                        expect(task, await http.get("/api/v1/applications?limit=20"), 200)
                    elif task == "stats":
                        expect(task, await http.get("/stats"), 200)
                    elif (prefix := next(_FREE, None)) is not None:
                        body = {"isp_id": isp_id, "prefixes": [{"prefix": f"{prefix}/32"}]}
                        created = await http.post("/api/v1/applications", json=body)
                        if expect("create", created, 201):
                            submitted = await http.post(
                                f"/api/v1/applications/{created.json()['id']}/submit",
                                headers={"If-Match": created.headers["ETag"]},
                            )
                            expect("submit", submitted, 200)
                except httpx.HTTPError as exc:
                    wrong.append(f"{task}: {exc!r}")

    await asyncio.gather(*(client(n, t) for n, t in enumerate(tokens)))
    return done, wrong


def test_fifty_clients_for_a_minute_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    registry = prepare(pg_url, applicants=CLIENTS)
    with serve_process(pg_url, tmp_path) as (base, process):

        async def run() -> tuple[Counter[str], list[str], int]:
            tokens = [t for _, t in registry.tokens]
            soak = asyncio.create_task(_soak(base, registry.isp_id, tokens))
            await asyncio.sleep(WARM_UP_S)
            warm = _rss_kib(process.pid)
            done, wrong = await soak
            return done, wrong, warm

        done, wrong, warm = asyncio.run(run())
        after = _rss_kib(process.pid)
    log = (tmp_path / "server.log").read_text()

    assert wrong == [], wrong[:5]
    # Every kind of request was made, many times over (about 3,000 in all on a quiet machine).
    assert set(done) == {*WEIGHTS, "submit"}, done
    assert sum(done.values()) > 10 * CLIENTS, done
    assert after <= MEMORY_BOUND * warm, f"RSS {warm} KiB after warm-up, {after} KiB at the end"
    assert "Traceback" not in log, log[-3000:]
