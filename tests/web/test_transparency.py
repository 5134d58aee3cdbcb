"""/transparency/checkpoints on both backends: public, paginated, signed with the key whose public
half is feed.pub; and the server's checkpoint scheduler under a fake timer (ADR 0008)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.api.harness import Api, build_api, database_url
from tests.console import VPNREG
from tests.feed_server.server import serving
from tests.feed_server.timers import FakeTimer
from tests.fixtures.postgres import BACKENDS
from vpnreg.core.audit_checkpoint import parse_checkpoint, verify_signature
from vpnreg.core.feed import key_id
from vpnreg.feedkeys import load_public_key, public_key_path
from vpnreg.registry.services import transparency
from vpnreg.registry.services.unit_of_work import Database
from vpnreg.web.policy import ALL_CALLERS
from vpnreg.web.transparency import CheckpointScheduler


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    urls = database_url(request.param, tmp_path_factory, request)
    built = build_api(next(urls), tmp_path_factory.mktemp("data"))
    try:
        yield built
    finally:
        built.app.state.database.dispose()
        next(urls, None)


def _sign(api: Api, times: int) -> None:
    """`times` checkpoints with the server's own key, the clock moving a minute each."""
    key = api.app.state.feed.signing_key()
    with api.app.state.database.session() as session:
        for _ in range(times):
            api.clock.advance(dt.timedelta(minutes=1))
            transparency.make_checkpoint(session, now=api.clock.now(), private_key=key)


def test_checkpoints_are_public_paginated_and_verify_with_feed_pub(api: Api) -> None:
    public = api.client("public")
    assert public.get("/transparency/checkpoints/latest").status_code == 404
    empty = public.get("/transparency/checkpoints").json()
    assert empty == {"latest": None, "checkpoints": [], "next": None}
    _sign(api, 3)
    feed_pub = load_public_key(public_key_path(api.app.state.settings.feed_key))
    trusted = {key_id(feed_pub): feed_pub}
    latest = public.get("/transparency/checkpoints/latest")
    assert latest.status_code == 200
    assert latest.headers["content-type"].startswith("application/json")
    verify_signature(parse_checkpoint(latest.json()), trusted)
    numbers = []
    page = public.get("/transparency/checkpoints", params={"limit": 2}).json()
    assert page["latest"] == latest.json()
    while True:
        for item in page["checkpoints"]:
            verify_signature(parse_checkpoint(item), trusted)
            numbers.append(item["number"])
        if page["next"] is None:
            break
        page = public.get(page["next"]).json()
    assert numbers == [3, 2, 1]
    too_many = public.get("/transparency/checkpoints", params={"limit": 10_000})
    assert too_many.status_code == 422
    assert too_many.headers["content-type"].startswith("application/problem+json")


def test_every_caller_reads_the_checkpoints(api: Api) -> None:
    _sign(api, 1)
    for who in ALL_CALLERS:
        assert api.client(who).get("/transparency/checkpoints/latest").status_code == 200, who


def test_the_scheduler_signs_every_interval_and_survives_a_failure(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    real_key = api.app.state.feed.signing_key()
    calls: list[int] = []

    def key() -> Ed25519PrivateKey:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("the key file is unreadable")
        return real_key

    database = Database(api.url)
    timer = FakeTimer()
    scheduler = CheckpointScheduler(database, key, interval_s=600.0, clock=api.clock, timer=timer)
    with database.session() as session:
        before = transparency.count_checkpoints(session)

    def count() -> int:
        with database.session() as session:
            return transparency.count_checkpoints(session)

    async def scenario() -> None:
        async with scheduler.lifespan(None):
            for i in range(3):
                await timer.until(lambda s: s == [600.0], "the scheduler to rest")
                api.clock.advance(dt.timedelta(minutes=10))
                # Something is audited each interval, so every tick has a reason to sign.
                await asyncio.to_thread(api.create, prefixes=[f"203.0.113.{16 * i}/28"])
                timer.advance(600.0)  # the tick runs; the next rest is after it
            await timer.until(lambda s: s == [600.0], "the scheduler to rest")

    try:
        with caplog.at_level(logging.ERROR, logger="vpnreg.web.transparency"):
            asyncio.run(asyncio.wait_for(scenario(), timeout=60))
        # Three ticks: signed, failed (logged, the server goes on), signed.
        assert count() == before + 2
        assert len(calls) == 3
        assert "audit checkpoint failed" in caplog.text
    finally:
        database.dispose()


def test_the_cli_checks_an_export_against_the_served_checkpoints(api: Api, tmp_path: Path) -> None:
    _sign(api, 2)
    with api.app.state.database.session() as session:
        signed = transparency.count_checkpoints(session)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPNREG_")}
    env["VPNREG_DATABASE_URL"] = api.url
    feed_pub = str(public_key_path(api.app.state.settings.feed_key))

    def vpnreg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VPNREG), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    exported = vpnreg("audit", "export", "--out", "audit.jsonl")
    assert exported.returncode == 0, exported.stderr
    with serving(api.app) as base:
        # One checkpoint a page: the check follows every `next` link.
        url = f"{base}/transparency/checkpoints?limit=1"
        checked = vpnreg(
            "audit", "verify", "--export", "audit.jsonl", "--checkpoint", url, "--trust", feed_pub
        )
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == ""
    assert f"{signed} signed checkpoint(s)" in checked.stdout
