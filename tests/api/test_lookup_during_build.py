"""While the public lookup's index of a new serial is being built, other lookups answer from the
serial before instead of queueing behind the build; the lookup that builds it, and every lookup
after, see the new serial (vpnreg.web.lookup, ADR 0014). The build here is a lookup's after a
quiet spell (no lookup since the last build, so the publish started none; the rebuild a publish
starts is tests/api/test_lookup_rebuild.py). Both backends."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from tests.api.harness import Api
from tests.api.held_build import HeldBuild
from tests.registry import flow
from vpnreg.registry.services.lookup import LookupResult
from vpnreg.registry.services.unit_of_work import Database
from vpnreg.web import background
from vpnreg.web.lookup import answer_lookup

OLD = "198.51.100.0/26"
NEW = "203.0.113.0/26"
ADDRESS = "203.0.113.9"


def test_lookups_during_a_build_answer_from_the_serial_before(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = api.app.state
    database = Database(api.url)
    request: Any = SimpleNamespace(app=api.app)

    async def ask() -> LookupResult:
        with database.session() as session:
            return await answer_lookup(
                request, session, address=ADDRESS, port=None, at=None,
                clock=api.clock, config=state.service_config,
            )  # fmt: skip

    async def scenario() -> None:
        await state.feed.publish_now()
        assert not (await ask()).registered  # builds the index of the first serial
        with database.session() as session:
            flow.approved(session, api.world, state.service_config, api.clock.now(), [(OLD, [])])
        await state.feed.publish_now()  # rebuilt at once: a lookup was answered since
        await background.settled()
        with database.session() as session:
            flow.approved(session, api.world, state.service_config, api.clock.now(), [(NEW, [])])
        await state.feed.publish_now()  # no lookup since that rebuild: no build now
        assert not background.running()

        build = HeldBuild(monkeypatch)
        builder = asyncio.ensure_future(ask())
        await build.started()
        during = await asyncio.wait_for(ask(), 5)  # not queued behind the build
        assert not during.registered
        assert not builder.done()
        build.release()
        built = await asyncio.wait_for(builder, 10)
        assert built.registered and built.prefix == NEW
        assert (await ask()).registered

    try:
        asyncio.run(scenario())
    finally:
        database.dispose()
