"""Units of work: reads take no write lock, writers wait for each other instead of failing,
nested services make one transaction, and work outside the database follows its outcome."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from tests.registry.conftest import build_world, make_config
from vpnreg.clock import FrozenClock
from vpnreg.registry import services
from vpnreg.registry.db import is_sqlite, make_engine, make_session_factory, upgrade
from vpnreg.registry.errors import Busy, NotFound, ValidationFailed
from vpnreg.registry.models import Application, AuditLogRow
from vpnreg.registry.services import transaction
from vpnreg.registry.services.transaction import on_outcome, run_unit, service_transaction


def _audit_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditLogRow)) or 0)


def _write_one(session: Session, clock: FrozenClock, name: str) -> None:
    services.create_isp(session, name=name, actor="cli:admin", now=clock.now())


def test_an_open_read_does_not_hold_back_a_writer(fresh_url: str, clock: FrozenClock) -> None:
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    factory = make_session_factory(engine)
    try:
        with factory() as reader, factory() as writer:
            before = _audit_count(reader)  # a read transaction stays open in `reader`
            assert reader.in_transaction()
            started = time.monotonic()
            _write_one(writer, clock, "Writer ISP")
            # Far below the busy timeout: the writer never waited for the reader.
            assert time.monotonic() - started < 1.0
            assert _audit_count(writer) == before + 1
    finally:
        engine.dispose()


def test_a_writer_waits_for_another_and_then_succeeds(fresh_url: str, clock: FrozenClock) -> None:
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    factory = make_session_factory(engine)
    done = threading.Event()
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            with factory() as session:
                _write_one(session, clock, "Second ISP")
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    try:
        with factory() as first, service_transaction(first):
            _write_one(first, clock, "First ISP")
            thread = threading.Thread(target=second_writer)
            thread.start()
            # Held well past SQLite's busy timeout of one attempt: the unit retries.
            assert not done.wait(2.5 if is_sqlite(fresh_url) else 0.5)
        thread.join(timeout=30)
        assert done.is_set() and not errors
        with factory() as session:
            names = {r[0] for r in session.execute(text("SELECT name FROM isps"))}
        assert {"First ISP", "Second ISP"} <= names
    finally:
        engine.dispose()


def test_a_lock_held_too_long_is_busy_not_an_internal_error(
    sqlite_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade(sqlite_url)
    monkeypatch.setattr(transaction, "WRITE_WAIT_S", 0.1)
    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    try:
        with factory() as holder, service_transaction(holder):
            _write_one(holder, clock, "Holder ISP")
            with factory() as late, pytest.raises(Busy) as caught:
                _write_one(late, clock, "Late ISP")
            assert caught.value.status == 503
            assert not late.in_transaction()
    finally:
        engine.dispose()


def test_nested_services_are_one_transaction(fresh_url: str, clock: FrozenClock) -> None:
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    factory = make_session_factory(engine)
    outcomes: list[str] = []
    try:
        with factory() as session:
            before = _audit_count(session)

            def failing_unit() -> None:
                with service_transaction(session):
                    _write_one(session, clock, "Inner ISP")  # joins the outer unit
                    on_outcome(
                        session,
                        committed=lambda: outcomes.append("committed"),
                        rolled_back=lambda: outcomes.append("rolled back"),
                    )
                    raise NotFound("thing", 1)

            with pytest.raises(NotFound):
                failing_unit()
            assert outcomes == ["rolled back"]
            assert _audit_count(session) == before
            with service_transaction(session):
                _write_one(session, clock, "Outer ISP")
                on_outcome(
                    session,
                    committed=lambda: outcomes.append("committed"),
                    rolled_back=lambda: outcomes.append("rolled back"),
                )
            assert outcomes == ["rolled back", "committed"]
            assert _audit_count(session) == before + 1
    finally:
        engine.dispose()


def test_on_outcome_outside_a_unit_is_a_programming_error(session: Session) -> None:
    with pytest.raises(RuntimeError):
        on_outcome(session, committed=lambda: None, rolled_back=lambda: None)


def test_run_unit_runs_a_locked_unit_again_from_the_start(session: Session) -> None:
    calls: list[int] = []

    def unit() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Busy()
        return "done"

    assert run_unit(session, unit) == "done"
    assert len(calls) == 3

    calls.clear()

    def always_busy() -> str:
        calls.append(1)
        raise Busy()

    with pytest.raises(Busy):
        run_unit(session, always_busy)
    assert len(calls) == transaction.UNIT_ATTEMPTS


def test_unknown_step_and_bad_arguments_are_refused(session: Session, clock: FrozenClock) -> None:
    config = make_config()
    world = build_world(session, clock.now(), config)
    app = services.create_application(
        session,
        organisation_id=world.soft_org,
        isp_id=world.isp,
        prefixes=[("203.0.113.0/28", [])],
        actor=world.applicant,
        now=clock.now(),
        config=config,
    )

    def take(action: str, **arguments: str | None) -> Application:
        step = services.StepRequest(
            action=action, application_id=app.id, actor=world.applicant, arguments=arguments
        )
        return services.take_step(session, step, now=clock.now(), config=config)

    with pytest.raises(NotFound):
        take("activate")  # the system's action, not a person's step
    with pytest.raises(ValidationFailed) as caught:
        take("submit", reason="no reason is taken")
    assert [(e.field, e.code) for e in caught.value.errors] == [("reason", "unexpected")]
    submitted = take("submit")
    assert submitted.state == "submitted"
    step = services.StepRequest(
        action="reject",
        application_id=app.id,
        actor=world.isp_user,
        arguments={"reason_code": " ", "reason": ""},
    )
    with pytest.raises(ValidationFailed) as caught:
        services.take_step(session, step, now=clock.now(), config=config)
    assert {e.field for e in caught.value.errors} == {"reason_code", "reason"}
