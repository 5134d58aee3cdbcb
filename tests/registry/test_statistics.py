"""The statistics' figures from the database (services.stats.statistics), on both backends:
registrations in force per day and category, turnaround per stage and week, decision shares,
gateways' feed freshness and blocked flows per protocol and day."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.registry.conftest import World
from tests.registry.flow import act, draft
from vpnreg.core.gateway_report import CountKey, FeedApplied, Report
from vpnreg.core.statistics import Freshness, Period
from vpnreg.registry import services
from vpnreg.registry.models import Application
from vpnreg.registry.services.gateway_reports import store_report
from vpnreg.registry.services.stats import Statistics, statistics

JAN = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # Thursday; Monday 2026-01-05 starts an ISO week
PERIOD = Period(dt.date(2026, 1, 5), dt.date(2026, 1, 15), "test")


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return JAN.replace(day=day, hour=hour, minute=minute)


def _walk(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    prefix: str,
    steps: list[tuple[str, dt.datetime]],
    *,
    bank: bool = False,
) -> int:
    """Create an application at the first step's time, then take each step at its time."""
    app = draft(session, world, config, steps[0][1], [(prefix, [])], bank=bank)
    actors = {
        "submit": world.bank_applicant if bank else world.applicant,
        "appeal": world.bank_applicant if bank else world.applicant,
        "verify": world.isp_user,
        "endorse": world.sector_user,
        "reject": world.regulator,
        "approve": world.regulator,
        "overturn": world.regulator2,
        "revoke": world.regulator,
    }
    for action, when in steps:
        extra = {
            "reject": {"reason_code": "documents", "reason": "because"},
            "appeal": {"text": "because"},
            "overturn": {"reason": "because"},
            "revoke": {"reason": "because"},
        }.get(action, {})
        act(
            action,
            session,
            application_id=app.id,
            actor=actors[action],
            now=when,
            config=config,
            **extra,
        )
    return app.id


def _report(
    session: Session,
    gateway: str,
    when: dt.datetime,
    feed: FeedApplied | None,
    counts: tuple[tuple[CountKey, int], ...] = (),
) -> None:
    report = Report(uuid.uuid4().hex, gateway, when, "nftables", feed, counts)
    assert store_report(session, report=report, token_name=gateway, now=when)


@pytest.fixture
def figures(session: Session, world: World, config: services.ServiceConfig) -> Statistics:
    # in force before the period: the baseline
    _walk(
        session,
        world,
        config,
        "203.0.113.0/28",
        [
            ("submit", at(2, 9)),
            ("verify", at(2, 10)),
            ("endorse", at(2, 11)),
            ("approve", at(2, 12)),
        ],
    )
    a = _walk(
        session,
        world,
        config,
        "203.0.113.16/28",
        [
            ("submit", at(5, 10)),
            ("verify", at(5, 12)),  # 2 h waiting for the ISP
            ("endorse", at(6, 12)),  # 24 h
            ("approve", at(7, 12)),  # 24 h; active at once
            ("revoke", at(12, 9)),  # out of force on the 12th (next ISO week: not a stage)
        ],
    )
    _walk(
        session,
        world,
        config,
        "203.0.113.32/28",
        [("submit", at(5, 10)), ("verify", at(5, 14)), ("approve", at(8, 14))],  # 4 h, 72 h
        bank=True,
    )
    _walk(
        session,
        world,
        config,
        "203.0.113.48/28",
        [
            ("submit", at(6, 10)),
            ("verify", at(6, 11)),  # 1 h
            ("reject", at(9, 11)),  # 72 h
            ("appeal", at(9, 12)),
            ("overturn", at(10, 12)),  # 24 h in appeal
        ],
    )
    first = services.publish(session, now=at(12, 10), config=config)
    head = services.current_feed(session)
    assert head is not None and first.serial == head.serial
    current = FeedApplied(head.session_id, head.serial, head.entries.set_hash())
    behind = FeedApplied(head.session_id, head.serial - 1, "c" * 64)
    other = FeedApplied("f" * 32, 40, "d" * 64)

    def blocked(day: int, hour: int, protocol: str, **where: int | str) -> CountKey:
        return CountKey(at(day, hour), protocol, "unregistered", **where)  # type: ignore[arg-type]

    _report(
        session,
        "gw-current",
        at(14, 11, 58),
        current,
        (
            (blocked(13, 10, "wireguard", prefix="198.51.100.0/24"), 5),
            (blocked(13, 11, "wireguard"), 3),
            (blocked(13, 10, "openvpn", registration_id=a), 2),
            (CountKey(at(13, 10), "wireguard", "registered", registration_id=a), 100),
            (blocked(4, 23, "wireguard"), 1000),  # before the period
        ),
    )
    _report(session, "gw-behind", at(14, 8), current)
    _report(session, "gw-behind", at(14, 11, 59), behind, ((blocked(14, 9, "wireguard"), 7),))
    _report(session, "gw-silent", at(14, 11), current)  # 60 min: stale after 3 x 5 min
    _report(session, "gw-nofeed", at(14, 11, 59), None)
    _report(session, "gw-other", at(14, 11, 59), other)
    _report(session, "gw-later", at(14, 12, 30), current)  # after the figures' moment
    return statistics(session, period=PERIOD, now=at(14, 12))


def test_registrations_in_force_per_day_and_category(figures: Statistics) -> None:
    assert figures.days[0] == dt.date(2026, 1, 5) and len(figures.days) == 10
    #                                        5  6  7  8  9 10 11 12 13 14
    assert figures.in_force["software_house"] == [1, 1, 2, 2, 2, 2, 2, 1, 1, 1]
    assert figures.in_force["bank"] == [0, 0, 0, 1, 1, 1, 1, 1, 1, 1]


def test_turnaround_per_stage_is_median_and_90th_percentile_per_week(
    figures: Statistics,
) -> None:
    week = dt.date(2026, 1, 5)
    rows = {
        (t.week, t.stage): (t.decisions, t.median_hours, t.p90_hours) for t in figures.turnaround
    }
    assert rows == {
        (week, "submitted"): (3, 2.0, pytest.approx(3.6)),  # 1, 2, 4 h
        (week, "isp_verified"): (3, 72.0, 72.0),  # 24, 72, 72 h
        (week, "sector_endorsed"): (1, 24.0, 24.0),
        (week, "appealed"): (1, 24.0, 24.0),
    }


def test_shares_of_approvals_rejections_appeals_and_overturns(figures: Statistics) -> None:
    shares = {s.outcome: (s.count, s.base) for s in figures.shares}
    assert shares == {
        "approved": (2, 3),
        "rejected": (1, 3),
        "appealed": (1, 1),
        "overturned": (1, 1),
    }


def test_feed_freshness_from_each_gateways_latest_report(figures: Statistics) -> None:
    assert figures.freshness == {
        Freshness.CURRENT: 1,
        Freshness.BEHIND: 1,  # its earlier report was current: the latest counts
        Freshness.OTHER_SESSION: 1,
        Freshness.NO_FEED: 1,
        Freshness.STALE: 1,
    }


def test_blocked_flows_per_protocol_per_day_count_unregistered_verdicts_only(
    figures: Statistics,
) -> None:
    assert figures.blocked == {
        "openvpn": [0, 0, 0, 0, 0, 0, 0, 0, 2, 0],
        "wireguard": [0, 0, 0, 0, 0, 0, 0, 0, 8, 7],
    }


def test_a_month_before_any_activity_has_empty_figures(session: Session) -> None:
    empty = statistics(
        session,
        period=Period(dt.date(2025, 2, 1), dt.date(2025, 3, 1), "2025-02"),
        now=at(14, 12),
    )
    assert len(empty.days) == 28
    assert empty.in_force == {} and empty.blocked == {} and empty.turnaround == []
    assert all(s.count == 0 and s.percent is None for s in empty.shares)
    assert set(empty.freshness.values()) == {0}


def test_a_legacy_import_is_in_force_from_its_import_until_revoked(
    session: Session, world: World, config: services.ServiceConfig
) -> None:
    """Imported registrations have no review step into force: they count from valid_from."""
    rows = [
        {
            "line": 2 + i,
            "organisation": "Karachi Calls",
            "category": "call_centre",
            "isp": "StormFiber",
            "subscriber_id": f"S{i}",
            "prefix": f"2001:db8:{i:x}::/48",
            "valid_until": "2026-12-31",
        }
        for i in range(3)
    ]
    report = services.import_legacy(session, rows=rows, now=at(3, 8), config=config)
    assert report.ok, report.problems
    first = session.scalars(select(Application.id).order_by(Application.id)).first()
    assert first is not None
    act(
        "revoke",
        session,
        application_id=first,
        actor=world.regulator,
        now=at(6, 8),
        config=config,
        reason="because",
    )
    figures = statistics(session, period=PERIOD, now=at(14, 12))
    assert figures.in_force == {"call_centre": [3, 2, 2, 2, 2, 2, 2, 2, 2, 2]}
