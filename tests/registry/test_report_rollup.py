"""The daily rollups of gateway reports (services.report_rollup, migration 0014) on both
backends: the figures read from them equal the figures computed by brute force from the raw
reports and count rows, a resend adds nothing, and the migration's backfill fills them exactly
as ingest does."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import defaultdict
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.gateway_report import BLOCKED_VERDICT, PROTOCOLS, VERDICTS, CountKey, Report
from vpnreg.core.policy import Verdict
from vpnreg.core.statistics import Freshness, Period, daily_series, utc_day
from vpnreg.registry.db import alembic_config, make_engine, make_session_factory, upgrade
from vpnreg.registry.models import (
    GatewayFlowDay,
    GatewayReport,
    GatewayReportCount,
    GatewayReportDay,
)
from vpnreg.registry.services.gateway_reports import STALE_INTERVALS, gateway_list, store_report
from vpnreg.registry.services.report_rollup import latest_report_ids
from vpnreg.registry.services.stats import REPORT_INTERVAL, statistics

START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
DAYS = 6
#: Gateways may count hours in their own zone: the day a count belongs to is its UTC day.
KARACHI = ZoneInfo("Asia/Karachi")


def random_reports(seed: int, n: int = 60) -> list[tuple[Report, dt.datetime]]:
    """`n` reports of a few gateways with their receipt times, in a random order of receipt
    (so ids do not follow times), counts on hours over DAYS days, some in Karachi's zone."""
    rng = random.Random(seed)
    protocols, verdicts = sorted(PROTOCOLS), sorted(VERDICTS)
    reports = []
    for _ in range(n):
        received = START + dt.timedelta(minutes=rng.randrange(DAYS * 24 * 60))
        if rng.random() < 0.1:  # on midnight exactly: the edge of a day
            received = received.replace(hour=0, minute=0)
        counts: dict[CountKey, int] = {}
        for _ in range(rng.randrange(0, 6)):
            hour = START + dt.timedelta(hours=rng.randrange(DAYS * 24))
            if rng.random() < 0.3:
                hour = hour.astimezone(KARACHI)
            verdict = rng.choice(verdicts)
            extra: dict[str, int | str] = {}
            if rng.random() < 0.3:
                extra["registration_id"] = rng.randrange(1, 4)
            elif verdict == Verdict.UNREGISTERED.value and rng.random() < 0.5:
                extra["prefix"] = f"198.51.{rng.randrange(3)}.0/24"
            key = CountKey(hour, rng.choice(protocols), verdict, **extra)  # type: ignore[arg-type]
            counts[key] = rng.randrange(1, 50)
        report = Report(
            uuid.uuid4().hex,
            f"gw-{rng.randrange(5)}",
            received,
            rng.choice(["nftables", "dry-run"]),
            None,
            tuple(counts.items()),
        )
        reports.append((report, received))
    return reports


def ingest(session: Session, reports: list[tuple[Report, dt.datetime]]) -> None:
    for report, received in reports:
        assert store_report(session, report=report, token_name="gw", now=received)


def moments(seed: int, reports: list[tuple[Report, dt.datetime]]) -> list[dt.datetime]:
    """Moments to take the freshness at: before any report, inside days, on midnights, on a
    report's receipt and just before it (a gateway's last report of that day comes after the
    moment), after every report."""
    rng = random.Random(seed + 1000)
    inside = [START + dt.timedelta(minutes=rng.randrange(DAYS * 24 * 60)) for _ in range(4)]
    received = [when for _, when in rng.sample(reports, 4)]
    return [
        START - dt.timedelta(hours=1),
        *inside,
        *received,
        *(when - dt.timedelta(minutes=1) for when in received),
        START + dt.timedelta(days=2),
        START + dt.timedelta(days=DAYS + 1),
    ]


def brute_blocked(session: Session, period: Period) -> dict[str, list[int]]:
    """Blocked flows per protocol and UTC day, summed in Python over every count row."""
    sums: dict[tuple[dt.date, str], int] = defaultdict(int)
    for hour, protocol, verdict, flows in session.execute(
        select(
            GatewayReportCount.hour,
            GatewayReportCount.protocol,
            GatewayReportCount.verdict,
            GatewayReportCount.flows,
        )
    ):
        day = utc_day(hour)
        if verdict == BLOCKED_VERDICT and period.start <= day < period.end:
            sums[(day, protocol)] += flows
    return daily_series(sums, period.days())


def brute_latest(session: Session, at: dt.datetime | None) -> dict[str, int]:
    """Per gateway, the highest report id received by `at` (None: ever), over every report."""
    latest: dict[str, int] = {}
    for row in session.scalars(select(GatewayReport)):
        if at is None or row.received_at <= at:
            latest[row.gateway_id] = max(latest.get(row.gateway_id, 0), row.id)
    return latest


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_figures_from_the_rollups_equal_brute_force_over_the_raw_rows(
    session: Session, seed: int
) -> None:
    reports = random_reports(seed)
    ingest(session, reports)
    whole = Period(
        START.date() - dt.timedelta(days=1), START.date() + dt.timedelta(days=DAYS + 1), "x"
    )
    part = Period(START.date() + dt.timedelta(days=2), START.date() + dt.timedelta(days=4), "y")
    assert any(any(v) for v in brute_blocked(session, whole).values())  # the data blocks some
    for period in (whole, part):
        for at in moments(seed, reports):
            figures = statistics(session, period=period, now=at)
            assert figures.blocked == brute_blocked(session, period)
            taken = min(at, period.end_time)
            latest = brute_latest(session, taken)
            found = session.execute(latest_report_ids(taken))
            assert {gateway: int(last) for gateway, last in found} == latest
            stale_before = taken - STALE_INTERVALS * REPORT_INTERVAL
            rows = {r.id: r for r in session.scalars(select(GatewayReport))}
            silent = sum(rows[i].received_at < stale_before for i in latest.values())
            # no feed in these reports: a gateway is silent or holds none
            assert figures.freshness[Freshness.STALE] == silent
            assert figures.freshness[Freshness.NO_FEED] == len(latest) - silent
    assert {g.gateway_id: g.last_report_at for g in gateway_list(session, now=START)} == {
        gateway: session.get_one(GatewayReport, last).received_at
        for gateway, last in brute_latest(session, None).items()
    }


def rollups(session: Session) -> tuple[set[tuple[object, ...]], set[tuple[object, ...]]]:
    flows = session.execute(
        select(
            GatewayFlowDay.day,
            GatewayFlowDay.gateway_id,
            GatewayFlowDay.protocol,
            GatewayFlowDay.verdict,
            GatewayFlowDay.flows,
        )
    )
    days = session.execute(
        select(GatewayReportDay.day, GatewayReportDay.gateway_id, GatewayReportDay.last_report_id)
    )
    return {tuple(r) for r in flows}, {tuple(r) for r in days}


def test_a_resend_adds_nothing_to_the_rollups_and_a_new_report_adds_its_flows(
    session: Session,
) -> None:
    hour = START.replace(hour=9)
    key = CountKey(hour, "wireguard", BLOCKED_VERDICT)
    first = Report(uuid.uuid4().hex, "gw-1", hour, "nftables", None, ((key, 5),))
    assert store_report(session, report=first, token_name="gw", now=hour)
    once = rollups(session)
    assert once[0] == {(hour.date(), "gw-1", "wireguard", BLOCKED_VERDICT, 5)}
    assert not store_report(session, report=first, token_name="gw", now=hour)
    assert rollups(session) == once
    other = Report(uuid.uuid4().hex, "gw-1", hour, "nftables", None, ((key, 2),))
    assert store_report(session, report=other, token_name="gw", now=hour)
    flows, days = rollups(session)
    assert flows == {(hour.date(), "gw-1", "wireguard", BLOCKED_VERDICT, 7)}
    assert days == {
        (hour.date(), "gw-1", max(r.id for r in session.scalars(select(GatewayReport))))
    }


def test_the_migration_fills_the_rollups_as_ingest_keeps_them(fresh_url: str) -> None:
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    try:
        with make_session_factory(engine)() as session:
            ingest(session, random_reports(7, n=80))
            kept = rollups(session)
        assert kept[0] and kept[1]
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0013")  # drops the rollups; the reports stay
        upgrade(fresh_url)  # 0014 again: filled from the reports
        with make_session_factory(engine)() as session:
            assert rollups(session) == kept
    finally:
        engine.dispose()
