"""The binding history of an address (regulator, auditor; every read audited) and its retention."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.registry import flow
from tests.registry.conftest import World
from tests.registry.test_bindings import ev, report
from vpnreg.clock import FrozenClock
from vpnreg.registry import services
from vpnreg.registry.errors import Forbidden, ValidationFailed
from vpnreg.registry.models import AuditLogRow, Binding
from vpnreg.registry.services.binding_history import binding_history, purge_bindings

H = dt.timedelta(hours=1)


def test_the_history_names_who_held_the_address_when_and_the_read_is_audited(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    t0 = clock.now()
    app = flow.approved(session, world, config, t0, [], subscriber_id="SUB-1")
    report(session, world, config, t0, ev("start", "SUB-1", "a", ports=(1024, 2047)))
    report(session, world, config, t0 + H, ev("stop", "SUB-1", "a"))
    report(session, world, config, t0 + 2 * H, ev("start", "SUB-2", "b"))  # no registration
    report(session, world, config, t0, ev("start", "SUB-3", "c", address="198.51.100.8"))

    rows = binding_history(
        session,
        actor=world.regulator,
        address="198.51.100.7",
        start=t0 - H,
        end=t0 + 3 * H,
        now=t0 + 3 * H,
        config=config,
    )
    assert [
        (r.subscriber_id, r.ports, r.valid_from, r.until, r.stopped, r.tracking_number, r.isp)
        for r in rows
    ] == [
        ("SUB-1", (1024, 2047), t0, t0 + H, True, app.tracking_number, "Nayatel"),
        ("SUB-2", (0, 65535), t0 + 2 * H, t0 + 2 * H + 24 * H, False, None, "Nayatel"),
    ]
    last = session.scalars(select(AuditLogRow).order_by(AuditLogRow.seq.desc())).first()
    assert last is not None
    assert (last.action, last.object_id, last.actor) == (
        "read_binding_history",
        "198.51.100.7",
        "reg1",
    )
    assert last.after["bindings"] == 2
    # A window after the first binding's stop sees the second only.
    later = binding_history(
        session,
        actor=world.regulator,
        address="198.51.100.7",
        start=t0 + H,
        end=t0 + 3 * H,
        now=t0 + 3 * H,
        config=config,
    )
    assert [r.subscriber_id for r in later] == ["SUB-2"]


def test_only_the_regulators_side_reads_the_history_and_bad_input_is_refused(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    kw = {"start": now - H, "end": now, "now": now, "config": config}
    for actor in (world.isp_user, world.applicant, world.sector_user):
        with pytest.raises(Forbidden):
            binding_history(session, actor=actor, address="198.51.100.7", **kw)  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed, match="address"):
        binding_history(session, actor=world.regulator, address="198.51.100.0/24", **kw)  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed, match="to must be after from"):
        binding_history(
            session,
            actor=world.regulator,
            address="198.51.100.7",
            start=now,
            end=now - H,
            now=now,
            config=config,
        )


def test_maintenance_deletes_bindings_past_retention_and_keeps_the_counts(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    t0 = clock.now()
    report(session, world, config, t0, ev("start", "SUB-1", "old", address="198.51.100.10"))
    report(session, world, config, t0, ev("start", "SUB-2", "stopped", address="198.51.100.11"))
    report(session, world, config, t0 + H, ev("stop", "SUB-2", "stopped"))
    recent = t0 + dt.timedelta(days=180)
    report(session, world, config, recent, ev("start", "SUB-3", "new", address="198.51.100.12"))
    # 180 days after the first one ended (t0 + 24 h) plus a second: the first two are gone.
    now = t0 + dt.timedelta(days=181, seconds=1)
    done = purge_bindings(session, now=now, retention_days=180)
    assert (done.deleted, done.by_isp) == (2, {"Nayatel": 2})
    assert list(session.scalars(select(Binding.session_id))) == ["new"]
    event = session.scalars(select(AuditLogRow).order_by(AuditLogRow.seq.desc())).first()
    assert event is not None
    assert (event.action, event.after["deleted"], event.after["by_isp"]) == (
        "purge_bindings",
        2,
        {"Nayatel": 2},
    )
    again = purge_bindings(session, now=now, retention_days=180)
    assert again.deleted == 0
    assert session.scalar(select(func.count()).select_from(Binding)) == 1
    with pytest.raises(ValidationFailed):
        purge_bindings(session, now=now, retention_days=0)
