"""Many clients at once against the real server (`vpnreg serve`), on SQLite and PostgreSQL.

Reads never wait for writers and writers never fail for contention: 200 simultaneous
anonymous lookups are all answered within 10 s, and 20 applicants creating and submitting
through the API while 20 others look addresses up and the portal's inline prefix check runs
all get 201/200, no request takes over 10 s, and no draft is left behind.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from tests.api.harness import database_url
from tests.concurrency.server import Registry, prepare, vpnreg_serve
from tests.fixtures.postgres import BACKENDS
from tests.registry.conftest import PASSWORD
from vpnreg.registry.db import make_engine, make_session_factory
from vpnreg.registry.models import Application

pytestmark = pytest.mark.slow

#: The deadline every request must meet, whatever else is going on.
DEADLINE_S = 10.0
CREATORS = 20
READERS = 20
APPLICATIONS_PER_CREATOR = 3
CSRF_FIELD = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


@dataclass
class Answer:
    what: str
    status: int
    seconds: float
    text: str = ""


@pytest.fixture(params=BACKENDS)
def registry_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from database_url(request.param, tmp_path_factory, request)


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(60.0),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
    )


async def _timed(
    answers: list[Answer], what: str, call: Callable[[], Awaitable[httpx.Response]]
) -> httpx.Response | None:
    started = time.monotonic()
    try:
        response = await call()
    except httpx.HTTPError as exc:
        answers.append(Answer(what, 0, time.monotonic() - started, repr(exc)))
        return None
    answers.append(Answer(what, response.status_code, time.monotonic() - started, response.text))
    return response


def _late_or_failed(answers: list[Answer], ok: set[int]) -> list[Answer]:
    return [a for a in answers if a.status not in ok or a.seconds > DEADLINE_S]


#: A lookup's answers: the registration (200) or "not registered" (404), both RDAP documents.
LOOKUP_OK = {200, 404}


def _address(i: int) -> str:
    return f"203.0.113.{i % 250 + 1}"


def test_200_simultaneous_lookups_are_all_answered(registry_url: str, tmp_path: Path) -> None:
    prepare(registry_url, applicants=0)

    async def burst(base: str) -> tuple[list[Answer], float]:
        answers: list[Answer] = []
        async with _client() as client:
            started = time.monotonic()
            await asyncio.gather(
                *(
                    _timed(
                        answers, "lookup", lambda i=i: client.get(f"{base}/api/v1/ip/{_address(i)}")
                    )
                    for i in range(200)
                )
            )
            return answers, time.monotonic() - started

    with vpnreg_serve(registry_url, tmp_path) as base:
        answers, took = asyncio.run(burst(base))
    assert len(answers) == 200
    bad = _late_or_failed(answers, LOOKUP_OK)
    assert not bad, f"{len(bad)} of 200 lookups late or failed, e.g. {bad[:3]}"
    assert all('"registered":' in a.text for a in answers)
    assert took < DEADLINE_S


async def _sign_in(client: httpx.AsyncClient, base: str, username: str) -> None:
    page = await client.get(f"{base}/login")
    match = CSRF_FIELD.search(page.text)
    assert match is not None
    response = await client.post(
        f"{base}/login",
        data={"username": username, "password": PASSWORD, "csrf_token": match.group(1)},
    )
    assert response.status_code == 303, response.text


async def _mix(base: str, registry: Registry) -> dict[str, list[Answer]]:
    answers: dict[str, list[Answer]] = {"write": [], "read": []}
    stop = asyncio.Event()

    async def creator(n: int, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with _client() as client:
            for k in range(APPLICATIONS_PER_CREATOR):
                prefix = f"198.51.100.{n * APPLICATIONS_PER_CREATOR + k}/32"
                body = {"isp_id": registry.isp_id, "prefixes": [{"prefix": prefix, "peers": []}]}
                created = await _timed(
                    answers["write"],
                    "create",
                    lambda body=body: client.post(
                        f"{base}/api/v1/applications", json=body, headers=headers
                    ),
                )
                if created is None or created.status_code != 201:
                    continue
                app_id = created.json()["id"]
                await _timed(
                    answers["write"],
                    "submit",
                    lambda app_id=app_id, etag=created.headers["ETag"]: client.post(
                        f"{base}/api/v1/applications/{app_id}/submit",
                        headers={**headers, "If-Match": etag},
                    ),
                )

    async def looker(n: int) -> None:
        async with _client() as client:
            i = n
            while not stop.is_set():
                await _timed(
                    answers["read"],
                    "lookup",
                    lambda i=i: client.get(f"{base}/api/v1/ip/{_address(i)}"),
                )
                i += READERS

    async def checker(username: str) -> None:
        async with _client() as client:
            await _sign_in(client, base, username)
            i = 0
            while not stop.is_set():
                await _timed(
                    answers["read"],
                    "check-prefix",
                    lambda i=i: client.get(
                        f"{base}/apply/check-prefix",
                        params={"prefix": f"192.0.2.{i % 256}/32"},
                        headers={"HX-Request": "true"},
                    ),
                )
                i += 1

    readers = [asyncio.create_task(looker(n)) for n in range(READERS - 1)]
    readers.append(asyncio.create_task(checker(registry.tokens[0][0])))
    await asyncio.gather(*(creator(n, tok) for n, (_, tok) in enumerate(registry.tokens)))
    stop.set()
    await asyncio.gather(*readers)
    return answers


def test_writers_and_readers_at_once(registry_url: str, tmp_path: Path) -> None:
    registry = prepare(registry_url, applicants=CREATORS)
    with vpnreg_serve(registry_url, tmp_path) as base:
        answers = asyncio.run(_mix(base, registry))

    writes = answers["write"]
    assert len(writes) == CREATORS * APPLICATIONS_PER_CREATOR * 2
    bad_writes = _late_or_failed(writes, {200, 201})
    assert not bad_writes, f"{len(bad_writes)} creates/submits failed or late: {bad_writes[:3]}"
    reads = answers["read"]
    assert any(a.what == "check-prefix" for a in reads)
    bad_reads = _late_or_failed(reads, LOOKUP_OK)
    assert not bad_reads, f"{len(bad_reads)} of {len(reads)} reads failed or late: {bad_reads[:3]}"

    engine = make_engine(registry_url)
    try:
        with make_session_factory(engine)() as session:
            states = dict(
                session.execute(
                    select(Application.state, func.count()).group_by(Application.state)
                ).all()
            )
    finally:
        engine.dispose()
    assert states == {"submitted": CREATORS * APPLICATIONS_PER_CREATOR}
