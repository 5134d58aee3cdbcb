"""The feed after an ISP withdraws its attestation (issue 17): the next publish drops the
registration's prefixes, a re-attestation's publish puts back exactly what was there, and the
publisher that long-polling gateways wait on wakes on the withdrawal's audit event (both
backends)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from tests.feed_server.conftest import Committed
from tests.feed_server.flow import bank_registration, registered_table, texts
from tests.registry.conftest import World
from tests.registry.flow import act
from vpnreg.clock import FrozenClock
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
