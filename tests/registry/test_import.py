"""Importing the legacy registry: all or nothing, every problem reported, and 20,000 rows."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.registry.conftest import World
from tests.registry.flow import approved
from vpnreg.clock import FrozenClock
from vpnreg.core.bindings import BindingEvent
from vpnreg.registry import services
from vpnreg.registry.models import Application, AuditLogRow, Organisation
from vpnreg.registry.services.bindings import report_events


def _row(line: int, prefix: str, **over: str) -> dict[str, object]:
    row: dict[str, object] = {
        "line": line,
        "organisation": "Karachi Calls",
        "category": "call_centre",
        "isp": "StormFiber",
        "subscriber_id": f"S{line}",
        "prefix": prefix,
        "valid_until": "2026-12-31",
    }
    row.update(over)
    return row


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_import_reports_every_problem_and_writes_nothing(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    held = approved(session, world, config, clock.now(), [("203.0.113.0/24", [])], bank=True)
    before = (_count(session, Application), _count(session, AuditLogRow))
    rows = [
        _row(2, "192.0.2.0/24"),
        _row(3, "10.1.0.0/24"),
        _row(4, "198.51.100.0/24", category="casino"),
        _row(5, "2001:db8:ffff::/48", valid_until="2025-01-01"),
        _row(6, "192.0.2.128/25"),
        _row(7, "203.0.113.0/25"),
        _row(8, "2001:db8::/48", valid_until="31/12/2026"),
    ]
    report = services.import_legacy(session, rows=rows, now=clock.now(), config=config)
    assert not report.ok and report.created == 0
    got = [(p.line, p.field, p.code) for p in report.problems]
    assert got == [
        (3, "prefix", "private"),
        (4, "category", "unknown_category"),
        (5, "valid_until", "past"),
        (6, "prefix", "overlap"),
        (7, "prefix", "overlap"),
        (8, "valid_until", "malformed"),
    ]
    messages = {p.line: p.message for p in report.problems}
    assert "line 2" in messages[6]
    assert held.tracking_number is not None and held.tracking_number in messages[7]
    assert (_count(session, Application), _count(session, AuditLogRow)) == before
    assert session.scalar(select(Organisation).where(Organisation.name == "Karachi Calls")) is None


def test_import_creates_active_registrations(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    rows = [_row(2 + i, f"2001:db8:{i:x}::/48") for i in range(30)]
    rows.append(_row(40, "192.0.2.0/24", organisation="Nayatel", isp="Nayatel", category="other"))
    report = services.import_legacy(session, rows=rows, now=clock.now(), config=config)
    assert report.ok, report.problems
    assert (report.created, report.organisations_created, report.isps_created) == (31, 2, 1)
    hit = services.lookup(session, address="2001:db8:1d::1", now=clock.now(), config=config)
    assert hit.registered and hit.valid_until == dt.date(2026, 12, 31)
    assert hit.category == "call_centre"
    assert len(services.registered_entries(session, now=clock.now(), config=config)) == 31
    assert services.verify_audit(session) is None


@pytest.mark.slow
def test_import_twenty_thousand_rows(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    rows = [_row(2 + i, f"2001:db8:{i // 256:x}:{i % 256:x}00::/56") for i in range(20_000)]
    report = services.import_legacy(session, rows=rows, now=clock.now(), config=config)
    assert report.ok, report.problems[:3]
    assert report.created == 20_000
    assert services.verify_audit(session) is None


def test_imported_rows_stay_prefix_bound_and_their_account_id_binds_nothing(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    """Issue 17: a legacy row's subscriber_id is the ISP's account id of the line, as before;
    the registration it makes is prefix-bound, so a binding the ISP reports for that account
    enters no feed (it is stored for the history only)."""
    report = services.import_legacy(
        session, rows=[_row(2, "192.0.2.0/28", subscriber_id="ACC-77")], now=clock.now(),
        config=config,
    )  # fmt: skip
    assert report.ok, report.problems
    app = session.scalars(select(Application).where(Application.subscriber_id == "ACC-77")).one()
    assert app.bound_to == "prefixes" and [p.prefix for p in app.prefixes] == ["192.0.2.0/28"]
    results = report_events(
        session, actor="test:isp", isp_id=app.isp_id,
        events=[BindingEvent("start", "ACC-77", "s1", "203.0.113.9", None)],
        now=clock.now(), config=config,
    )  # fmt: skip
    assert [r.status for r in results] == ["stored"]
    entries = services.registered_entries(session, now=clock.now(), config=config)
    assert [(str(e.prefix), e.registration_id, e.ports) for e in entries] == [
        ("192.0.2.0/28", app.id, (0, 65535))
    ]
