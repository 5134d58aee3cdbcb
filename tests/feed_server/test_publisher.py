"""FeedPublisher.catch_up over a committed registry (both backends): while nothing is audited and
no time-driven step is due it reads a few small rows and never the registered or the stored set;
a change is one full publish; a feed moved by another process is taken over."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.pool import NullPool

from tests.feed_server.conftest import Committed
from tests.feed_server.flow import bank_registration
from vpnreg.clock import FrozenClock
from vpnreg.core.bindings import BindingEvent
from vpnreg.core.feed import Mode
from vpnreg.registry import services
from vpnreg.registry.db import make_engine
from vpnreg.registry.services import feed_store
from vpnreg.registry.services.bindings import report_events
from vpnreg.registry.services.feed_publisher import CatchUp, FeedPublisher


class Recorded:
    """A NullPool engine on the registry that keeps the text of every statement it runs."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url, poolclass=NullPool)
        self.statements: list[str] = []

        @event.listens_for(self.engine, "before_cursor_execute")
        def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            self.statements.append(statement.lower())

    def touched(self, table: str) -> bool:
        return any(f" {table}" in s for s in self.statements)


@pytest.fixture
def recorded(committed: Committed) -> Iterator[Recorded]:
    made = Recorded(committed.url)
    try:
        yield made
    finally:
        made.engine.dispose()


def publisher_on(recorded: Recorded, committed: Committed, clock: FrozenClock) -> FeedPublisher:
    return FeedPublisher(engine=recorded.engine, config=committed.config, clock=clock, max_deltas=3)


def approve(committed: Committed, clock: FrozenClock, prefix: str) -> None:
    bank_registration(committed.session, committed.world, committed.config, clock.now(), prefix)
    committed.session.rollback()


def test_catch_up_reads_neither_set_until_something_is_audited(
    committed: Committed, recorded: Recorded, clock: FrozenClock
) -> None:
    approve(committed, clock, "198.51.100.0/24")
    publisher = publisher_on(recorded, committed, clock)
    assert publisher.catch_up(check_time=False) == CatchUp(True, True)  # nothing held yet
    held = publisher.history()
    assert held is not None and len(held.entries) == 1

    recorded.statements.clear()
    for i in range(10):
        clock.advance(dt.timedelta(minutes=1))
        assert publisher.catch_up(check_time=i % 2 == 0) == CatchUp(False, False)
    assert recorded.touched("audit_head") and recorded.touched("applications")
    for table in ("application_prefixes", "prefix_peers", "feed_entries", "feed_deltas"):
        assert not recorded.touched(table), table
    # Per call: the audit head and the feed_state row; every other call the time aggregate,
    # the probes for a binding that reached its end and one that began, and the one for a
    # trial that reached its end.
    assert len([s for s in recorded.statements if s.startswith("select")]) == 10 * 2 + 5 * 4

    approve(committed, clock, "192.0.2.0/24")
    recorded.statements.clear()
    assert publisher.catch_up(check_time=False) == CatchUp(True, True)
    # The same recorder sees a real publish read prefixes (the approved registration's).
    assert recorded.touched("application_prefixes")
    after = publisher.history()
    assert after is not None and (after.session_id, after.serial) == (held.session_id, 2)
    assert publisher.catch_up(check_time=True) == CatchUp(False, False)


def test_catch_up_takes_over_a_feed_another_process_published(
    committed: Committed, recorded: Recorded, clock: FrozenClock
) -> None:
    publisher = publisher_on(recorded, committed, clock)
    publisher.publish()
    approve(committed, clock, "192.0.2.0/24")
    elsewhere = services.publish(committed.session, now=clock.now(), config=committed.config)
    assert elsewhere.changed

    # Something was audited, so this publishes; the stored feed already holds the change,
    # so no serial of its own: it takes over the other process's.
    assert publisher.catch_up(check_time=False) == CatchUp(True, True)
    held = publisher.history()
    assert held is not None and (held.session_id, held.serial) == (
        elsewhere.session_id,
        elsewhere.serial,
    )
    assert publisher.catch_up(check_time=False) == CatchUp(False, False)


def test_following_reads_the_stored_state_from_one_snapshot(
    committed: Committed, recorded: Recorded, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process publishes between the follower's read of the state row and its read of
    the entries: the follower still holds one whole state (under READ COMMITTED it read the
    newer entries against the older row's set hash and failed)."""
    leader = publisher_on(recorded, committed, clock)
    leader.publish()
    follower = publisher_on(recorded, committed, clock)
    approve(committed, clock, "192.0.2.0/24")
    leader.publish()
    feed_store.forget_histories()  # another process: nothing of the leader's in memory
    real_read = feed_store.read_state
    raced: list[int] = []

    def read_then_race(session: Any, *, lock: bool) -> Any:
        state = real_read(session, lock=lock)
        if not raced:
            raced.append(state.serial)
            approve(committed, clock, "203.0.113.0/24")
            leader.publish()  # committed by "the leader" between the two reads
            feed_store.forget_histories()
        return state

    monkeypatch.setattr(feed_store, "read_state", read_then_race)
    assert follower.follow() == CatchUp(False, True)
    held = follower.history()
    assert held is not None and held.serial == raced[0]
    assert [str(e.prefix) for e in held.entries] == ["192.0.2.0/24"]
    monkeypatch.setattr(feed_store, "read_state", real_read)
    assert follower.follow() == CatchUp(False, True)  # the next follow takes the newer state
    after = follower.history()
    assert after is not None and after.serial == raced[0] + 1 and len(after.entries) == 2


def test_following_applies_the_new_deltas_to_the_held_state_without_reading_every_entry(
    committed: Committed, recorded: Recorded, clock: FrozenClock
) -> None:
    leader = FeedPublisher(
        engine=make_engine(committed.url, poolclass=NullPool), config=committed.config,
        clock=clock, max_deltas=3,
    )  # fmt: skip
    try:
        approve(committed, clock, "198.51.100.0/26")
        leader.publish()
        follower = publisher_on(recorded, committed, clock)
        assert follower.follow() == CatchUp(False, True)  # nothing held: a full load
        approve(committed, clock, "192.0.2.0/26")
        leader.publish()
        approve(committed, clock, "203.0.113.0/26")
        leader.publish()
        feed_store.forget_histories()  # another process: nothing of the leader's in memory
        recorded.statements.clear()

        assert follower.follow() == CatchUp(False, True)
        assert recorded.touched("feed_deltas") and not recorded.touched("feed_entries")
        followed, led = follower.history(), leader.history()
        assert followed is not None and led is not None
        assert followed.serial == led.serial and followed.entries == led.entries
        assert followed.entries.set_hash() == led.entries.set_hash()
        assert [d.serial for d in followed.deltas] == [d.serial for d in led.deltas]
        assert followed.delta_since(led.serial - 2) is not None

        # Beyond the kept deltas (max_deltas=3) the steps do not lead there: a full load.
        for prefix in ("192.0.2.64/26", "198.51.100.64/26", "203.0.113.64/26", "192.0.2.128/26"):
            approve(committed, clock, prefix)
            leader.publish()
        feed_store.forget_histories()
        recorded.statements.clear()
        assert follower.follow() == CatchUp(False, True)
        assert recorded.touched("feed_entries")
        again = follower.history()
        assert again is not None and again.entries == leader.history().entries  # type: ignore[union-attr]
    finally:
        leader.close()


def test_a_binding_reaching_its_end_is_news_for_the_time_check(
    committed: Committed, recorded: Recorded, clock: FrozenClock
) -> None:
    publisher = publisher_on(recorded, committed, clock)
    publisher.publish()
    report_events(
        committed.session,
        actor="test:isp",
        isp_id=committed.world.isp,
        events=[
            BindingEvent(
                "start", "SUB-1", "s1", "198.51.100.7", until=clock.now() + dt.timedelta(hours=1)
            )
        ],
        now=clock.now(),
        config=committed.config,
    )
    committed.session.rollback()
    assert publisher.catch_up(check_time=False).published  # the report was audited
    clock.advance(dt.timedelta(minutes=59))
    assert publisher.catch_up(check_time=True) == CatchUp(False, False)
    clock.advance(dt.timedelta(minutes=1))
    assert publisher.catch_up(check_time=False) == CatchUp(False, False)
    assert publisher.catch_up(check_time=True).published  # its end passed: publish again
    assert publisher.catch_up(check_time=True) == CatchUp(False, False)


def test_a_trial_reaching_its_planned_end_is_reverted_by_the_time_check(
    committed: Committed, recorded: Recorded, clock: FrozenClock
) -> None:
    publisher = publisher_on(recorded, committed, clock)
    publisher.publish()
    services.set_mode(
        committed.session, mode="dry-run", protocol="openvpn", reason="openvpn trial",
        until=clock.now() + dt.timedelta(hours=1), actor=committed.world.regulator,
        now=clock.now(), config=committed.config,
    )  # fmt: skip
    committed.session.rollback()
    assert publisher.catch_up(check_time=False).moved  # the change was audited
    held = publisher.history()
    assert held is not None and held.mode.effective("openvpn") is Mode.DRY_RUN
    clock.advance(dt.timedelta(minutes=59))
    assert publisher.catch_up(check_time=True) == CatchUp(False, False)
    clock.advance(dt.timedelta(minutes=1))
    assert publisher.catch_up(check_time=False) == CatchUp(False, False)
    reverted = publisher.catch_up(check_time=True)
    assert reverted.published and reverted.moved
    held = publisher.history()
    assert held is not None and held.mode.effective("openvpn") is Mode.ENFORCE
    assert publisher.catch_up(check_time=True) == CatchUp(False, False)
