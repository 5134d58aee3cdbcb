"""The audit log: one event per change, tamper detection, and concurrent writers."""

from __future__ import annotations

import datetime as dt
import itertools
import multiprocessing

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from tests.registry.conftest import World
from tests.registry.flow import approved
from vpnreg.clock import FrozenClock
from vpnreg.core.audit import next_record
from vpnreg.registry import services
from vpnreg.registry.audit_log import AuditChain, append_event, iter_records, verify_audit
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.models import AuditLogRow
from vpnreg.registry.services.transaction import service_transaction

WRITERS = 8
EVENTS_PER_WRITER = 12


@pytest.fixture
def logged(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> list[int]:
    """A log of a dozen real events; returns their seq numbers."""
    approved(session, world, config, clock.now(), [("192.0.2.0/24", [])])
    seqs = list(session.scalars(select(AuditLogRow.seq).order_by(AuditLogRow.seq)))
    assert len(seqs) >= 10
    return seqs


def _drop_triggers(session: Session) -> None:
    for name in ("audit_log_no_update", "audit_log_no_delete"):
        if session.bind is not None and session.get_bind().dialect.name == "postgresql":
            session.execute(text(f"DROP TRIGGER {name} ON audit_log"))
        else:
            session.execute(text(f"DROP TRIGGER {name}"))


def test_each_change_appends_one_linked_event(
    session: Session, logged: list[int], world: World
) -> None:
    assert logged == list(range(1, len(logged) + 1))
    records = list(iter_records(session, batch=3))
    assert [r.seq for r in records] == logged
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    actions = [r.action for r in records]
    assert actions[-5:] == ["submit", "verify", "endorse", "approve", "activate"]
    assert records[-1].actor == "system"
    assert records[-2].actor == world.regulator.username
    assert verify_audit(session) is None


def test_triggers_refuse_changes(session: Session, logged: list[int]) -> None:
    with pytest.raises(Exception, match="append-only"), session.begin_nested():
        session.execute(text("UPDATE audit_log SET actor = 'x' WHERE seq = 1"))


@pytest.mark.parametrize(
    ("tamper", "kind"),
    [
        ("UPDATE audit_log SET actor = 'mallory' WHERE seq = {k}", "modified"),
        ("UPDATE audit_log SET after = NULL WHERE seq = {k}", "modified"),
        ("DELETE FROM audit_log WHERE seq = {k}", None),
        (
            "UPDATE audit_log SET seq = -1 WHERE seq = {k};"
            "UPDATE audit_log SET seq = {k} WHERE seq = {k1};"
            "UPDATE audit_log SET seq = {k1} WHERE seq = -1",
            None,
        ),
    ],
    ids=["update-actor", "update-after", "delete", "swap-seq"],
)
def test_tampering_names_the_first_bad_event(
    session: Session, logged: list[int], tamper: str, kind: str | None
) -> None:
    k = logged[4]
    _drop_triggers(session)
    for statement in tamper.format(k=k, k1=k + 1).split(";"):
        session.execute(text(statement))
    problem = verify_audit(session)
    assert problem is not None
    assert problem.seq == k
    if kind is not None:
        assert problem.kind == kind


def test_unparseable_json_in_a_snapshot_is_reported_as_tampering(
    session: Session, logged: list[int]
) -> None:
    k = logged[4]
    _drop_triggers(session)
    bad = text("UPDATE audit_log SET after = '{\"x\": 1}x' WHERE seq = :k")
    if session.get_bind().dialect.name == "postgresql":
        # PostgreSQL's json type refuses the text: such tampering cannot be stored at all.
        with pytest.raises(DataError), session.begin_nested():
            session.execute(bad, {"k": k})
        return
    session.execute(bad, {"k": k})
    problem = verify_audit(session)
    assert problem is not None
    assert (problem.seq, problem.kind) == (k, "malformed")
    assert f"event {k}" in problem.message


def test_forged_row_at_the_end_is_noticed(session: Session, logged: list[int]) -> None:
    last = list(iter_records(session))[-1]
    bad = last.seq + 1
    session.execute(
        text(
            "INSERT INTO audit_log (seq, time, actor, action, object_type, object_id, prev_hash, "
            "hash) VALUES (:s, :t, 'mallory', 'approve', 'application', '1', :p, :h)"
        ),
        {"s": bad, "t": last.time.replace(tzinfo=None), "p": last.hash, "h": "f" * 64},
    )
    problem = verify_audit(session)
    assert problem is not None
    assert problem.seq == bad


def test_forged_row_with_a_correct_hash_is_caught_by_the_head(
    session: Session, logged: list[int]
) -> None:
    last = list(iter_records(session))[-1]
    forged = next_record(
        last,
        time=last.time,
        actor="mallory",
        action="approve",
        object_type="application",
        object_id="1",
        before=None,
        after=None,
    )
    session.add(
        AuditLogRow(
            seq=forged.seq,
            time=forged.time,
            actor=forged.actor,
            action=forged.action,
            object_type=forged.object_type,
            object_id=forged.object_id,
            before=None,
            after=None,
            prev_hash=forged.prev_hash,
            hash=forged.hash,
        )
    )
    session.flush()
    problem = verify_audit(session)
    assert problem is not None
    assert problem.kind == "head_mismatch"


def test_deleting_the_newest_events_is_noticed(session: Session, logged: list[int]) -> None:
    _drop_triggers(session)
    session.execute(text("DELETE FROM audit_log WHERE seq >= :s"), {"s": logged[-2]})
    problem = verify_audit(session)
    assert problem is not None
    assert problem.kind == "head_mismatch"


def test_chain_batch_matches_single_appends(session: Session, clock: FrozenClock) -> None:
    chain = AuditChain(session)
    for i in range(5):
        chain.append(
            time=clock.now(),
            actor="system",
            action="tick",
            object_type="clock",
            object_id=i,
            before=None,
            after={"i": i},
        )
    chain.write()
    append_event(
        session,
        time=clock.now(),
        actor="system",
        action="tick",
        object_type="clock",
        object_id=5,
    )
    session.commit()
    assert [r.object_id for r in iter_records(session)] == ["0", "1", "2", "3", "4", "5"]
    assert verify_audit(session) is None


def _append_worker(url: str, writer: int, barrier: object) -> None:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    barrier.wait()  # type: ignore[attr-defined]
    now = dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
    for i in range(EVENTS_PER_WRITER):
        # Each event in its own write unit, as every service writes them.
        with factory() as session, service_transaction(session):
            append_event(
                session,
                time=now + dt.timedelta(microseconds=i),
                actor=f"writer-{writer}",
                action="write",
                object_type="test",
                object_id=i,
                after={"n": i},
            )
    engine.dispose()


@pytest.mark.slow
def test_concurrent_writers_keep_one_chain(fresh_url: str) -> None:
    upgrade(fresh_url)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    procs = [
        ctx.Process(target=_append_worker, args=(fresh_url, w, barrier)) for w in range(WRITERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * WRITERS
    engine = make_engine(fresh_url)
    try:
        with Session(engine) as session:
            records = list(iter_records(session))
            assert [r.seq for r in records] == list(range(1, WRITERS * EVENTS_PER_WRITER + 1))
            assert {r.actor for r in records} == {f"writer-{w}" for w in range(WRITERS)}
            assert verify_audit(session) is None
    finally:
        engine.dispose()
