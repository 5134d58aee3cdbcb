"""Concurrent binding reports from separate processes (both backends): overlapping starts of
different subscribers leave exactly one stored, and a retransmitted start stores one row."""

from __future__ import annotations

import datetime as dt
import multiprocessing

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.registry.conftest import build_world, make_config
from vpnreg.clock import FrozenClock
from vpnreg.core.bindings import BindingEvent
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.models import Binding
from vpnreg.registry.services.bindings import report_events

CONTENDERS = 4
NOW = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)


def _report_worker(
    url: str, isp_id: int, events: list[BindingEvent], barrier: object, results: object
) -> None:
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        barrier.wait()  # type: ignore[attr-defined]
        done = report_events(
            session, actor="test:isp", isp_id=isp_id, events=events, now=NOW, config=make_config()
        )
        results.put([r.status for r in done])  # type: ignore[attr-defined]
    engine.dispose()


def _race(url: str, isp_id: int, reports: list[list[BindingEvent]]) -> list[list[str]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(reports))
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_report_worker, args=(url, isp_id, events, barrier, results))
        for events in reports
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    return outcomes


@pytest.mark.slow
def test_racing_overlapping_starts_store_one_and_retransmissions_one_row(
    fresh_url: str, clock: FrozenClock
) -> None:
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    with make_session_factory(engine)() as session:
        isp_id = build_world(session, clock.now(), make_config()).isp
    # Each contender's subscriber wants an overlapping block of the same shared address.
    rivals = [
        [BindingEvent("start", f"SUB-{i}", "s", "198.51.100.7", (1000 + i, 2000 + i))]
        for i in range(CONTENDERS)
    ]
    outcomes = _race(fresh_url, isp_id, rivals)
    assert sorted(o[0] for o in outcomes) == ["refused"] * (CONTENDERS - 1) + ["stored"]
    # The same start sent by every contender at once (a retransmission racing the original).
    same = [[BindingEvent("start", "SUB-X", "x", "198.51.100.8")] for _ in range(CONTENDERS)]
    assert _race(fresh_url, isp_id, same) == [["stored"]] * CONTENDERS
    with Session(engine) as session:
        rows = session.execute(
            select(Binding.address, func.count())
            .group_by(Binding.address)
            .order_by(Binding.address)
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("198.51.100.7/32", 1), ("198.51.100.8/32", 1)]
