"""The feed server's scheduler and long polls under a fake timer (both backends): wake-ups that
change nothing compute nothing, one approval is one serial, a burst of notifies is one publish,
long polls answer on a new serial and give up only when their wait is over.

No test here sleeps for time to pass: time moves when a test advances the FakeTimer, and a test
waits (with a hang guard) only for the server to come to rest."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from tests.feed_server.conftest import Committed
from tests.feed_server.flow import bank_registration, registered_table
from tests.feed_server.server import feed_app
from tests.feed_server.timers import HANG_GUARD_S, FakeTimer
from vpnreg.clock import FrozenClock
from vpnreg.core.feed import EntryTable
from vpnreg.registry import services
from vpnreg.registry.services import feed as feed_services
from vpnreg.registry.services.feed_publisher import CatchUp
from vpnreg.registry.services.lookup import registered_table as compute_registered_table
from vpnreg.web.feed import FeedOptions, FeedServer

#: Binary fractions, so advancing the fake clock by them lands exactly on deadlines.
#: Not listening to PostgreSQL's notifications: these tests count the wake-ups their timer and
#: their notify_changed cause (the notifications are tested in tests/scaleout).
TIMED = FeedOptions(
    check_interval_s=1.0, publish_interval_s=4.0, notify_gap_s=0.25, max_wait_s=10.0, max_deltas=3,
    listen=False,
)  # fmt: skip


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Return once `condition()` holds; fail after HANG_GUARD_S real seconds."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


@dataclass
class Live:
    """A feed server in its lifespan on the test's loop, its fake timer and an HTTP client."""

    server: FeedServer
    timer: FakeTimer
    http: httpx.AsyncClient
    reg: Committed
    clock: FrozenClock
    #: (check_time, outcome) of every catch-up the scheduler ran, in order.
    catch_ups: list[tuple[bool, CatchUp]]

    async def approve(self, prefix: str) -> None:
        """Approve a registration in a worker thread, as another request or process would."""

        def work() -> None:
            reg = self.reg
            bank_registration(reg.session, reg.world, reg.config, self.clock.now(), prefix)
            reg.session.rollback()

        await asyncio.to_thread(work)

    def held(self) -> tuple[str, int]:
        history = self.server.publisher.history()
        assert history is not None
        return history.session_id, history.serial

    async def tick(self, seconds: float) -> CatchUp:
        """Move time by `seconds` (the scheduler must be resting in its check-interval wait),
        and return what the catch-up it caused did once the scheduler rests again."""
        done = len(self.catch_ups)
        self.timer.advance(seconds)
        await eventually(lambda: len(self.catch_ups) > done, "a catch-up")
        await self.timer.until(lambda s: TIMED.check_interval_s in s, "the scheduler to rest")
        assert len(self.catch_ups) == done + 1
        return self.catch_ups[-1][1]

    async def notify(self, path: str, **params: str | int | float) -> httpx.Response:
        return await self.http.get(f"/feed/v1/{path}", params=params)


def count_computations(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """A list that grows by one each time a publish computes the registered set."""
    calls: list[object] = []

    def counted(session: Session, **kw: Any) -> EntryTable:
        calls.append(kw)
        return compute_registered_table(session, **kw)

    monkeypatch.setattr(feed_services, "registered_table", counted)
    return calls


@contextlib.asynccontextmanager
async def live_feed(
    committed: Committed,
    tmp_path: Path,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    options: FeedOptions = TIMED,
) -> AsyncIterator[Live]:
    _, secret = services.create_token(
        committed.session, name="gw", role="gateway", actor="cli:admin", now=clock.now()
    )
    timer = FakeTimer()
    app, server = feed_app(committed.url, tmp_path / "keys", clock, options, timer=timer)
    catch_ups: list[tuple[bool, CatchUp]] = []
    original = server._catch_up_blocking

    def recorded(check_time: bool) -> CatchUp:
        outcome = original(check_time)
        catch_ups.append((check_time, outcome))
        return outcome

    monkeypatch.setattr(server, "_catch_up_blocking", recorded)
    async with server.lifespan(None):
        await timer.until(lambda s: s == [options.check_interval_s], "the scheduler to start")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://feed.test",
            headers={"Authorization": f"Bearer {secret}"},
        ) as http:
            yield Live(server, timer, http, committed, clock, catch_ups)


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, timeout=60))


def test_wake_ups_without_a_change_compute_nothing_and_one_approval_is_one_serial(
    committed: Committed, tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    bank_registration(
        committed.session, committed.world, committed.config, clock.now(), "198.51.100.0/24"
    )
    committed.session.rollback()

    async def scenario() -> None:
        async with live_feed(committed, tmp_path, clock, monkeypatch) as live:
            start = live.held()
            computations = count_computations(monkeypatch)
            # Twelve check-interval wake-ups, three of them also looking at the time, and a
            # notify that follows no change (a sign-in, say).
            for _ in range(12):
                assert await live.tick(TIMED.check_interval_s) == CatchUp(False, False)
            live.server.notify_changed()
            await eventually(lambda: len(live.catch_ups) == 13, "the notified catch-up")
            await live.timer.until(lambda s: s == [1.0], "the scheduler to rest")
            assert live.catch_ups[-1][1] == CatchUp(False, False)
            assert [t for t, _ in live.catch_ups].count(True) == 3
            assert computations == []
            assert live.held() == start

            await live.approve("192.0.2.0/24")
            assert await live.tick(TIMED.check_interval_s) == CatchUp(True, True)
            # the incremental step: the approved registration's entries, not the whole set
            assert computations == []
            assert live.held() == (start[0], start[1] + 1)
            for _ in range(5):
                assert await live.tick(TIMED.check_interval_s) == CatchUp(False, False)
            assert computations == [] and live.held() == (start[0], start[1] + 1)

    run(scenario())


def test_a_burst_of_notified_changes_is_one_publish(
    committed: Committed, tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet = FeedOptions(
        check_interval_s=3600, publish_interval_s=3600, notify_gap_s=0.25, max_wait_s=10,
        max_deltas=3, listen=False,
    )  # fmt: skip

    async def scenario() -> None:
        async with live_feed(committed, tmp_path, clock, monkeypatch, quiet) as live:
            session_id, serial = live.held()
            for i in range(5):  # each change is followed by its notify, as the API does
                await live.approve(f"192.0.2.{i * 16}/28")
                live.server.notify_changed()
            for _ in range(15):
                live.server.notify_changed()
            # The first notify started the gap; every later one joins it.
            await live.timer.until(lambda s: s == [0.25], "the scheduler to wait out the gap")
            assert live.catch_ups == []
            live.timer.advance(0.25)
            await eventually(lambda: len(live.catch_ups) == 1, "the publish")
            # Resting again with nothing asked for: the notifies of the gap were all consumed.
            await live.timer.until(lambda s: s == [3600], "the scheduler to rest")
            assert live.catch_ups == [(False, CatchUp(published=True, moved=True))]
            assert live.held() == (session_id, serial + 1)
            history = live.server.publisher.history()
            assert history is not None and len(history.entries) == 5

    run(scenario())


def test_a_time_driven_change_is_published_when_the_scheduler_looks_at_the_time(
    committed: Committed, tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vpnreg.core.review import validity_end

    app = bank_registration(
        committed.session, committed.world, committed.config, clock.now(), "203.0.113.0/24"
    )
    assert app.valid_until is not None
    end = validity_end(app.valid_until, committed.config.tz)
    committed.session.rollback()

    async def scenario() -> None:
        async with live_feed(committed, tmp_path, clock, monkeypatch) as live:
            session_id, serial = live.held()
            clock.set(end)  # nobody touches the registry: only time moves
            outcomes = [await live.tick(TIMED.check_interval_s) for _ in range(4)]
            # Ticks 1-3 look only at the audit log; tick 4 (publish_interval_s) at the time too.
            assert [t for t, _ in live.catch_ups] == [False, False, False, True]
            assert outcomes == [CatchUp(False, False)] * 3 + [CatchUp(True, True)]
            assert live.held() == (session_id, serial + 1)
            history = live.server.publisher.history()
            assert history is not None and len(history.entries) == 0

    run(scenario())


def test_notify_answers_on_a_new_serial_and_204_only_when_its_wait_is_over(
    committed: Committed, tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with live_feed(committed, tmp_path, clock, monkeypatch) as live:
            session_id, serial = live.held()
            poll = asyncio.ensure_future(
                live.notify("notify", since=serial, session=session_id, wait=8)
            )
            await live.timer.until(lambda s: s == [1.0, 8.0], "the long poll to wait")
            await live.approve("192.0.2.0/24")
            live.server.notify_changed()
            # The change waits out the notify gap (from the start-up publish), then publishes.
            await live.timer.until(lambda s: s == [0.25, 8.0], "the notify gap")
            live.timer.advance(0.25)
            answer = await asyncio.wait_for(poll, HANG_GUARD_S)
            assert answer.status_code == 200
            assert answer.json() == {"session_id": session_id, "serial": serial + 1}
            assert live.timer.monotonic() == 0.25  # answered by the publish, not by the wait

            quiet = asyncio.ensure_future(
                live.notify("notify", since=serial + 1, session=session_id, wait=0.5)
            )
            await live.timer.until(lambda s: s == [0.5, 1.0], "the quiet long poll to wait")
            live.timer.advance(0.25)
            for _ in range(20):  # room for a poll that wrongly ended to answer
                await asyncio.sleep(0)
            assert not quiet.done()
            assert live.timer.sleepers() == [0.5, 1.0]
            live.timer.advance(0.25)
            assert (await asyncio.wait_for(quiet, HANG_GUARD_S)).status_code == 204

            other = await live.notify("notify", since=serial + 1, session="f" * 32, wait=5)
            assert other.json() == {"session_id": session_id, "serial": serial + 1}

    run(scenario())


def test_a_waiting_delta_answers_the_new_serials_delta_and_204_only_when_its_wait_is_over(
    committed: Committed, tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/delta?wait=W: the long poll on the delta itself (one request per change)."""

    async def scenario() -> None:
        async with live_feed(committed, tmp_path, clock, monkeypatch) as live:
            session_id, serial = live.held()
            poll = asyncio.ensure_future(
                live.notify("delta", since=serial, session=session_id, wait=8)
            )
            await live.timer.until(lambda s: s == [1.0, 8.0], "the long poll to wait")
            await live.approve("192.0.2.0/24")
            live.server.notify_changed()
            await live.timer.until(lambda s: s == [0.25, 8.0], "the notify gap")
            live.timer.advance(0.25)
            answer = await asyncio.wait_for(poll, HANG_GUARD_S)
            assert answer.status_code == 200
            (delta,) = answer.json()["deltas"]
            assert (delta["previous_serial"], delta["serial"]) == (serial, serial + 1)
            assert [e["prefix"] for e in delta["added"]] == ["192.0.2.0/24"]
            assert live.timer.monotonic() == 0.25  # answered by the publish, not by the wait

            quiet = asyncio.ensure_future(
                live.notify("delta", since=serial + 1, session=session_id, wait=0.5)
            )
            await live.timer.until(lambda s: s == [0.5, 1.0], "the quiet long poll to wait")
            live.timer.advance(0.5)
            answer = await asyncio.wait_for(quiet, HANG_GUARD_S)
            assert answer.status_code == 204 and answer.content == b""

            # Not current: answered at once, as without `wait` (a delta, or a reset).
            behind = await live.notify("delta", since=serial, session=session_id, wait=5)
            assert [d["serial"] for d in behind.json()["deltas"]] == [serial + 1]
            other = await live.notify("delta", since=serial + 1, session="f" * 32, wait=5)
            assert other.json()["reset"] is True

            # Ahead of the serial held (another server process answered first): waited for,
            # like a change; still ahead when the wait is over, a reset.
            ahead = asyncio.ensure_future(
                live.notify("delta", since=serial + 2, session=session_id, wait=0.5)
            )
            await live.timer.until(lambda s: s == [0.5, 1.0], "the ahead long poll to wait")
            await live.approve("198.51.100.0/24")
            live.server.notify_changed()
            # the gap since the last publish is over: serial + 2 is published at once
            await eventually(lambda: live.held() == (session_id, serial + 2), "the publish")
            await live.timer.until(lambda s: s == [0.5, 1.0], "the ahead poll to wait on")
            for _ in range(20):  # room for a poll that wrongly ended to answer
                await asyncio.sleep(0)
            assert not ahead.done()  # equal to `since`, not past it: nothing new to send
            live.timer.advance(0.5)
            assert (await asyncio.wait_for(ahead, HANG_GUARD_S)).status_code == 204
            gone_back = asyncio.ensure_future(
                live.notify("delta", since=serial + 9, session=session_id, wait=0.5)
            )
            await live.timer.until(lambda s: s == [0.5, 1.0], "the gone-back poll to wait")
            live.timer.advance(0.5)
            answer = await asyncio.wait_for(gone_back, HANG_GUARD_S)
            assert answer.status_code == 200
            assert answer.json() == {"reset": True, "session_id": session_id, "serial": serial + 2}

    run(scenario())


def test_the_scheduler_publishes_changes_made_elsewhere_without_a_hint(
    committed: Committed, tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with live_feed(committed, tmp_path, clock, monkeypatch) as live:
            session_id, serial = live.held()
            poll = asyncio.ensure_future(
                live.notify("notify", since=serial, session=session_id, wait=8)
            )
            await live.timer.until(lambda s: s == [1.0, 8.0], "the long poll to wait")
            await live.approve("203.0.113.0/24")  # as a CLI in another process: no notify
            live.timer.advance(TIMED.check_interval_s)
            answer = await asyncio.wait_for(poll, HANG_GUARD_S)
            assert answer.status_code == 200 and answer.json()["serial"] == serial + 1
            assert live.timer.monotonic() == TIMED.check_interval_s
            expected = registered_table(live.reg.session, live.reg.config, clock.now())
            live.reg.session.rollback()
            history = live.server.publisher.history()
            assert history is not None and history.entries == expected

    run(scenario())
