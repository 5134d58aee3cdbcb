"""Services take the audit head's row lock (which every audited write queues on) only at the
end of their transaction: after it come the events' insert, the head's update and the commit,
nothing else. An approval that activates at once records two steps; a time sweep records one
per application it moves (vpnreg.registry.audit_log.DeferredEvents)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event, select

from tests.registry.conftest import build_world, make_config
from tests.registry.flow import act, ready_for_decision
from vpnreg.clock import FrozenClock
from vpnreg.registry import services
from vpnreg.registry.db import make_engine, make_session_factory, upgrade
from vpnreg.registry.models import AuditLogRow

#: What may run once the head is locked: the previous event, the new ones, the head, the
#: feed's wake-up, and the transaction's end.
_AFTER_LOCK = ("audit_log", "audit_head", "NOTIFY", "COMMIT", "RELEASE SAVEPOINT")


@pytest.fixture
def engine(fresh_url: str) -> Iterator[Engine]:
    upgrade(fresh_url)
    made = make_engine(fresh_url)
    yield made
    made.dispose()


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(_c: object, _cur: object, statement: str, *_rest: object) -> None:
        seen.append(" ".join(statement.split()))

    return seen


def _after_the_lock(statements: list[str]) -> list[str]:
    locks = [i for i, s in enumerate(statements) if s.startswith("SELECT") and "audit_head" in s]
    locks = [i for i in locks if "FOR UPDATE" in statements[i] or "seq" in statements[i]]
    assert locks, statements
    return statements[locks[0] :]


def test_an_approval_locks_the_audit_head_only_to_write_its_events(
    engine: Engine, clock: FrozenClock
) -> None:
    config = make_config()
    with make_session_factory(engine)() as session:
        world = build_world(session, clock.now(), config)
        app = ready_for_decision(session, world, config, clock.now(), [("203.0.113.0/24", [])])
        seen = _statements(engine)
        act("approve", session, application_id=app.id, actor=world.regulator, now=clock.now(),
            config=config)  # fmt: skip
        after = _after_the_lock(seen)
        actions = session.scalars(
            select(AuditLogRow.action).order_by(AuditLogRow.seq.desc()).limit(2)
        ).all()
    assert list(reversed(actions)) == ["approve", "activate"]  # two steps, one lock
    assert sum(s.startswith("SELECT") and "FROM audit_head" in s for s in after) == 1, after
    strays = [s for s in after if not any(word in s for word in _AFTER_LOCK)]
    assert not strays, strays


def test_a_time_sweep_locks_the_audit_head_only_to_write_its_events(
    engine: Engine, clock: FrozenClock
) -> None:
    config = make_config()
    with make_session_factory(engine)() as session:
        world = build_world(session, clock.now(), config)
        for prefix in ("203.0.113.0/25", "203.0.113.128/25"):
            app = ready_for_decision(session, world, config, clock.now(), [(prefix, [])])
            act("approve", session, application_id=app.id, actor=world.regulator,
                now=clock.now(), config=config)  # fmt: skip
        later = clock.now() + dt.timedelta(days=800)  # both past their end
        seen = _statements(engine)
        moved = services.advance_time(session, now=later, config=config)
        after = _after_the_lock(seen)
    assert len(moved) >= 2
    strays = [s for s in after if not any(word in s for word in _AFTER_LOCK)]
    assert not strays, strays
