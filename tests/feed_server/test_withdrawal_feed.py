"""The feed after an ISP withdraws its attestation (issue 17): the next publish drops the
registration's prefixes, a re-attestation's publish puts back exactly what was there, the
publisher that long-polling gateways wait on wakes on the withdrawal's audit event, and a real
long-polling feed client follows both (both backends)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy.orm import Session

from tests.feed_server.conftest import Committed
from tests.feed_server.flow import bank_registration, registered_table, texts
from tests.feed_server.server import feed_app, serving, trusted
from tests.registry.conftest import World
from tests.registry.flow import act
from vpnreg.agent.feedclient import FeedClient, PollStatus, Timers
from vpnreg.clock import FrozenClock, SystemClock
from vpnreg.registry import services
from vpnreg.registry.services.feed_publisher import CatchUp, FeedPublisher


def _published(session: Session) -> list[tuple[str, tuple[str, ...], int]]:
    history = services.current_feed(session)
    assert history is not None
    return texts(history.entries)


def test_withdrawal_removes_the_prefixes_and_reattestation_restores_them(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    kept = bank_registration(session, world, config, clock.now(), "198.51.100.0/24")
    app = bank_registration(session, world, config, clock.now(), "192.0.2.0/24", ["203.0.113.0/24"])
    services.publish(session, now=clock.now(), config=config)
    before = _published(session)
    assert {e[2] for e in before} == {kept.id, app.id}

    clock.advance(dt.timedelta(minutes=1))
    act("withdraw_attestation", session, application_id=app.id, actor=world.isp_user,
        now=clock.now(), config=config, reason="line cancelled")  # fmt: skip
    withdrawn = services.publish(session, now=clock.now(), config=config)
    assert (withdrawn.changed, withdrawn.added, withdrawn.removed) == (True, 0, 1)
    assert _published(session) == [e for e in before if e[2] != app.id]
    assert _published(session) == texts(registered_table(session, config, clock.now()))
    history = services.current_feed(session)
    assert history is not None and history.deltas
    assert texts(history.deltas[-1].removed) == [e for e in before if e[2] == app.id]

    clock.advance(dt.timedelta(minutes=1))
    act("reattest", session, application_id=app.id, actor=world.isp_user, now=clock.now(),
        config=config)  # fmt: skip
    restored = services.publish(session, now=clock.now(), config=config)
    assert (restored.changed, restored.added, restored.removed) == (True, 1, 0)
    assert restored.serial == withdrawn.serial + 1
    assert _published(session) == before


def test_the_publisher_wakes_on_the_withdrawal(committed: Committed, clock: FrozenClock) -> None:
    app = bank_registration(
        committed.session, committed.world, committed.config, clock.now(), "192.0.2.0/24"
    )
    committed.session.rollback()  # end its read transaction: the publisher has its own
    publisher = FeedPublisher.for_url(committed.url, config=committed.config, clock=clock)
    try:
        assert publisher.catch_up(check_time=False).published
        held = publisher.history()
        assert held is not None and [e.registration_id for e in held.entries] == [app.id]
        assert publisher.catch_up(check_time=True) == CatchUp(False, False)

        act("withdraw_attestation", committed.session, application_id=app.id,
            actor=committed.world.isp_user, now=clock.now(), config=committed.config,
            reason="address reassigned")  # fmt: skip
        committed.session.rollback()
        # No time step is due: the audit head alone wakes it, and the set it holds is empty.
        assert publisher.catch_up(check_time=False) == CatchUp(True, True)
        after = publisher.history()
        assert after is not None and after.serial == held.serial + 1
        assert list(after.entries) == []
    finally:
        publisher.close()


def test_a_long_polling_gateway_drops_the_prefixes_within_seconds_and_gets_them_back(
    committed: Committed, tmp_path: Path
) -> None:
    """The real feed client against the real server: each of its long polls (at most 5 s, the
    issue's "seconds") ends with the set the registry holds after the step."""
    clock = SystemClock()
    _, gateway = services.create_token(
        committed.session, name="gw", role="gateway", actor="cli:admin", now=clock.now()
    )
    kept = bank_registration(committed.session, committed.world, committed.config, clock.now(),
                             "198.51.100.0/24")  # fmt: skip
    app = bank_registration(committed.session, committed.world, committed.config, clock.now(),
                            "192.0.2.0/24")  # fmt: skip
    committed.session.rollback()
    feed, server = feed_app(committed.url, tmp_path / "keys", clock)
    with serving(feed) as base:
        client = FeedClient(
            source=f"{base}/feed/v1",
            trusted=trusted(server),
            state_dir=tmp_path / "state",
            clock=clock,
            token=gateway,
            timers=Timers(refresh_s=5),
        )
        with client:
            first = client.poll()
            assert first.status is PollStatus.UPDATED, first.error
            assert client.state is not None
            held = {e.registration_id for e in client.state.entries}
            assert held == {kept.id, app.id}

            steps = (
                ("withdraw_attestation", {"reason": "line cancelled"}, {kept.id}),
                ("reattest", {}, {kept.id, app.id}),
            )
            for action, arguments, expected in steps:
                act(action, committed.session, application_id=app.id,
                    actor=committed.world.isp_user, now=clock.now(), config=committed.config,
                    **arguments)  # fmt: skip
                committed.session.rollback()
                polled = client.poll(wait_s=5)
                assert polled.status is PollStatus.UPDATED, polled.error
                assert {e.registration_id for e in client.state.entries} == expected
                registry = registered_table(committed.session, committed.config, clock.now())
                committed.session.rollback()
                assert client.state.set_hash == registry.set_hash()
