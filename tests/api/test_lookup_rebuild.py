"""The lookup index is rebuilt as soon as the process holds a new serial (when lookups were
answered since the last build), so the first lookup after a publish does not wait for the build;
a process nobody asks builds nothing (vpnreg.web.lookup.rebuild_on_new_serial). Both backends."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from tests.api.harness import Api
from tests.api.held_build import HeldBuild
from tests.registry import flow
from vpnreg.registry.services import lookup_index
from vpnreg.registry.services.lookup import LookupResult
from vpnreg.registry.services.unit_of_work import Database
from vpnreg.web import background
from vpnreg.web.lookup import answer_lookup

NEW = "203.0.113.0/26"
ADDRESS = "203.0.113.9"


def _asker(api: Api, database: Database) -> Any:
    request: Any = SimpleNamespace(app=api.app)
    state = api.app.state

    async def ask() -> LookupResult:
        with database.session() as session:
            return await answer_lookup(
                request, session, address=ADDRESS, port=None, at=None,
                clock=api.clock, config=state.service_config,
            )  # fmt: skip

    return ask


def _approve(api: Api, database: Database, prefix: str = NEW) -> None:
    config = api.app.state.service_config
    with database.session() as session:
        flow.approved(session, api.world, config, api.clock.now(), [(prefix, [])])


def test_a_publish_starts_the_build_and_lookups_meanwhile_do_not_wait(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = api.app.state
    database = Database(api.url)
    ask = _asker(api, database)

    async def scenario() -> None:
        await state.feed.publish_now()
        assert not (await ask()).registered  # the first lookup builds the first index
        _approve(api, database)

        build = HeldBuild(monkeypatch)
        await state.feed.publish_now()  # the serial moves: the rebuild starts, no lookup asked
        await build.started()
        deadline = time.monotonic() + 10
        during = await asyncio.wait_for(ask(), 5)  # the serial before, not queued
        assert not during.registered
        build.release()
        key = state.feed.publisher.held_key()
        while state.lookup_index.held(key) is None:
            assert time.monotonic() < deadline, "the rebuild did not finish"
            await asyncio.sleep(0.01)
        assert state.lookup_index.building() is None
        after = await ask()
        assert after.registered and after.prefix == NEW

    try:
        asyncio.run(scenario())
    finally:
        database.dispose()


def test_nothing_is_built_after_a_publish_nobody_looked_up_before(api: Api) -> None:
    state = api.app.state
    database = Database(api.url)
    ask = _asker(api, database)

    async def scenario() -> None:
        await state.feed.publish_now()
        await ask()  # (the fixture's database may hold the other test's registrations)
        _approve(api, database, "198.51.100.0/26")
        await state.feed.publish_now()
        assert background.running()  # asked since the last build: rebuilt at once
        await background.settled()
        _approve(api, database, "198.51.100.64/26")
        await state.feed.publish_now()
        assert not background.running()  # nobody asked since that rebuild

    try:
        asyncio.run(scenario())
    finally:
        database.dispose()


def test_a_lookup_between_a_publish_and_its_announcement_does_not_build(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publish has returned from its thread but the loop has not announced the serial yet
    (which starts the rebuild): a lookup then answers from the index before, building nothing."""
    state = api.app.state
    database = Database(api.url)
    ask = _asker(api, database)
    builds: list[object] = []
    real = lookup_index.build_lookup_index

    def counted(session: Any, history: Any) -> Any:
        builds.append(history.serial)
        return real(session, history)

    async def scenario() -> None:
        await state.feed.publish_now()
        await ask()
        await background.settled()
        monkeypatch.setattr(lookup_index, "build_lookup_index", counted)
        _approve(api, database, "192.0.2.0/26")
        state.feed.publisher.publish()  # as the scheduler's thread does, before _signal
        assert state.feed.settling()
        before = await asyncio.wait_for(_ask_at(api, database, "192.0.2.9"), 5)
        assert not before.registered and builds == []  # the serial before, no build
        state.feed._signal()  # the scheduler's next step on the loop: the announcement
        assert not state.feed.settling()
        await background.settled()
        assert builds == [state.feed.publisher.held_key()[1]]  # the announcement built it
        assert (await _ask_at(api, database, "192.0.2.9")).registered

    try:
        asyncio.run(scenario())
    finally:
        database.dispose()


async def _ask_at(api: Api, database: Database, address: str) -> LookupResult:
    request: Any = SimpleNamespace(app=api.app)
    with database.session() as session:
        return await answer_lookup(
            request, session, address=address, port=None, at=None,
            clock=api.clock, config=api.app.state.service_config,
        )  # fmt: skip
