"""Concurrent approvals of overlapping prefixes from separate processes: exactly one winner."""

from __future__ import annotations

import datetime as dt
import multiprocessing

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.registry.conftest import build_world, make_config
from tests.registry.flow import act, ready_for_decision
from vpnreg.clock import FrozenClock
from vpnreg.registry import services
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.errors import OverlapConflict
from vpnreg.registry.models import Claim, User

CONTENDERS = 4
# Nested, so every pair overlaps.
PREFIXES = ["203.0.113.0/24", "203.0.113.0/25", "203.0.113.64/26", "203.0.113.96/27"]


def _approve_worker(url: str, application_id: int, barrier: object, results: object) -> None:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    config = make_config()
    with factory() as session:
        regulator = session.scalar(select(User).where(User.username == "reg1"))
        assert regulator is not None
        barrier.wait()  # type: ignore[attr-defined]
        try:
            app = act(
                "approve",
                session,
                application_id=application_id,
                actor=regulator,
                now=dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC),
                config=config,
            )
            results.put((application_id, "won", app.tracking_number))  # type: ignore[attr-defined]
        except OverlapConflict as exc:
            results.put((application_id, "lost", exc.tracking_number))  # type: ignore[attr-defined]
    engine.dispose()


@pytest.mark.slow
def test_concurrent_overlapping_approvals_leave_one_winner(
    fresh_url: str, clock: FrozenClock
) -> None:
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    config = make_config()
    factory = make_session_factory(engine)
    with factory() as session:
        world = build_world(session, clock.now(), config)
        apps = [
            ready_for_decision(session, world, config, clock.now(), [(p, [])]) for p in PREFIXES
        ]
        ids = {a.id: a.tracking_number for a in apps}
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(CONTENDERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_approve_worker, args=(fresh_url, i, barrier, results)) for i in ids
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * CONTENDERS
    winners = [o for o in outcomes if o[1] == "won"]
    assert len(winners) == 1
    winner_number = ids[winners[0][0]]
    assert all(o[2] == winner_number for o in outcomes if o[1] == "lost")
    with Session(engine) as session:
        holders = set(session.scalars(select(Claim.application_id)))
        assert holders == {winners[0][0]}
        assert services.verify_audit(session) is None
    engine.dispose()
