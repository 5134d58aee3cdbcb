"""Figures about the registry: applications by state and category, registered prefixes, and
the charts' figures over a period (`statistics`): registrations in force by category, review
turnaround per stage and week, decision shares, gateways' feed freshness, blocked VPN flows."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, case, func, select, type_coerce
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from vpnreg.core.gateway_report import BLOCKED_VERDICT
from vpnreg.core.review import REGISTERED_STATES, Action, State
from vpnreg.core.statistics import (
    FeedHead,
    Freshness,
    Period,
    Share,
    Turnaround,
    daily_series,
    decision_shares,
    freshness_counts,
    running_totals,
    weekly_turnaround,
)
from vpnreg.registry.models import (
    Application,
    ApplicationPrefix,
    FeedDeltaRow,
    FeedStateRow,
    GatewayReport,
    Organisation,
    Review,
    UTCDateTime,
)
from vpnreg.registry.services.gateway_reports import REPORT_INTERVAL, STALE_INTERVALS
from vpnreg.registry.services.report_rollup import flows_per_day, latest_report_ids


@dataclass(frozen=True)
class RegistryStats:
    """Counts only: nothing here names an organisation or a subscriber."""

    applications: int
    organisations: int
    registered_prefixes: int
    by_state: dict[str, int]
    by_category: dict[str, int]


def registry_stats(session: Session) -> RegistryStats:
    by_state = {
        state: int(n)
        for state, n in session.execute(
            select(Application.state, func.count()).group_by(Application.state)
        )
    }
    by_category = {
        category: int(n)
        for category, n in session.execute(
            select(Application.category, func.count()).group_by(Application.category)
        )
    }
    registered = session.scalar(
        select(func.count())
        .select_from(ApplicationPrefix)
        .join(Application, Application.id == ApplicationPrefix.application_id)
        .where(Application.state.in_([s.value for s in REGISTERED_STATES]))
    )
    organisations = session.scalar(select(func.count()).select_from(Organisation))
    return RegistryStats(
        applications=sum(by_state.values()),
        organisations=int(organisations or 0),
        registered_prefixes=int(registered or 0),
        by_state=dict(sorted(by_state.items())),
        by_category=dict(sorted(by_category.items())),
    )


# -- The figures behind the charts (issue 19, "Public statistics with charts") -----------------
#
# Every query groups in SQL; Python only reshapes the groups (a few per day and key) and, for
# the turnaround, the review steps of the period (far fewer than gateway reports, which are
# never read row by row here). The gateway figures read the daily rollups
# (services.report_rollup), not the reports and count rows, whose number grows every 5 minutes
# per gateway.

#: The review stages whose turnaround is shown, in the order of the process, by the state an
#: application waits in; the name says who it waits for.
STAGES: dict[str, str] = {
    State.SUBMITTED.value: "ISP attestation",
    State.ISP_VERIFIED.value: "sector body or regulator",
    State.SECTOR_ENDORSED.value: "regulator decision",
    State.APPEALED.value: "appeal decision",
}
#: The steps that end a stage by a reviewer's decision (a withdrawal is the applicant's).
_DECISIONS = tuple(
    a.value
    for a in (
        Action.VERIFY,
        Action.ENDORSE,
        Action.APPROVE,
        Action.REJECT,
        Action.UPHOLD,
        Action.OVERTURN,
    )
)
_SHARE_ACTIONS = tuple(
    a.value for a in (Action.APPROVE, Action.REJECT, Action.APPEAL, Action.OVERTURN, Action.UPHOLD)
)


class _UtcDay(FunctionElement[str]):
    """A timestamp column's UTC day as 'YYYY-MM-DD' text, on either backend."""

    type = String()
    inherit_cache = True


@compiles(_UtcDay, "sqlite")
def _utc_day_sqlite(element: _UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite holds UTCDateTime values as naive UTC text (models.UTCDateTime)
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(_UtcDay, "postgresql")
def _utc_day_postgresql(element: _UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


def _day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


@dataclass(frozen=True)
class Statistics:
    """The charts' figures over one period. Counts and durations only, never a name."""

    period: Period
    #: When the figures were taken; the freshness is as of min(this, the period's end).
    as_of: dt.datetime
    days: list[dt.date]
    #: Registrations in force at the end of each day, per category.
    in_force: dict[str, list[int]]
    turnaround: list[Turnaround]
    shares: list[Share]
    freshness: dict[Freshness, int]
    #: A gateway silent for this long counts as not reporting.
    stale_after: dt.timedelta
    #: VPN flows gateways blocked on each day, per protocol.
    blocked: dict[str, list[int]]


def statistics(
    session: Session,
    *,
    period: Period,
    now: dt.datetime,
    interval: dt.timedelta = REPORT_INTERVAL,
) -> Statistics:
    """The figures of the statistics page and the monthly report over `period`."""
    days = period.days()
    return Statistics(
        period=period,
        as_of=now,
        days=days,
        in_force=_in_force(session, period, days),
        turnaround=_turnaround(session, period),
        shares=_shares(session, period),
        freshness=_freshness(session, at=min(now, period.end_time), interval=interval),
        stale_after=STALE_INTERVALS * interval,
        blocked=_blocked(session, period, days),
    )


def _in_force(session: Session, period: Period, days: list[dt.date]) -> dict[str, list[int]]:
    """Registrations in a registered state at the end of each day, by category: every review
    step into a registered state counts +1 and every step out -1; a legacy import (created in
    force at its valid_from, with no step into force) +1 on that day."""
    registered = [s.value for s in REGISTERED_STATES]
    change = case(
        (Review.to_state.in_(registered) & Review.from_state.not_in(registered), 1),
        (Review.from_state.in_(registered) & Review.to_state.not_in(registered), -1),
        else_=0,
    )
    stepped = (
        select(_UtcDay(Review.created_at).label("day"), Application.category, func.sum(change))
        .join(Application, Application.id == Review.application_id)
        .where(Review.created_at < period.end_time, change != 0)
        .group_by("day", Application.category)
    )
    imported = (
        select(_UtcDay(Application.valid_from).label("day"), Application.category, func.count())
        .where(
            Application.valid_from.is_not(None),
            Application.valid_from < period.end_time,
            # created in force: never a draft (every other application was submitted from one)
            ~select(Review.id)
            .where(
                Review.application_id == Application.id,
                Review.from_state == State.DRAFT.value,
            )
            .exists(),
        )
        .group_by("day", Application.category)
    )
    baseline: dict[str, int] = defaultdict(int)
    changes: dict[tuple[dt.date, str], int] = defaultdict(int)
    for query in (stepped, imported):
        for text, category, n in session.execute(query):
            day = _day(text)
            if day < period.start:
                baseline[category] += int(n)
            else:
                changes[(day, category)] += int(n)
    return running_totals(baseline=baseline, changes=changes, days=days)


def _turnaround(session: Session, period: Period) -> list[Turnaround]:
    """Per week and stage, how long the decisions taken in the period had waited: from the
    step that entered the stage (the application's previous step) to the decision."""
    touched = select(Review.application_id).where(
        Review.created_at >= period.start_time, Review.created_at < period.end_time
    )
    entered = type_coerce(
        func.lag(Review.created_at).over(
            partition_by=Review.application_id, order_by=(Review.created_at, Review.id)
        ),
        UTCDateTime(),
    )
    steps = (
        select(
            Review.from_state,
            Review.action,
            Review.created_at.label("left_at"),
            entered.label("entered_at"),
        )
        .where(Review.application_id.in_(touched))
        .subquery()
    )
    rows = session.execute(
        select(steps.c.from_state, steps.c.left_at, steps.c.entered_at).where(
            steps.c.left_at >= period.start_time,
            steps.c.left_at < period.end_time,
            steps.c.from_state.in_(list(STAGES)),
            steps.c.action.in_(_DECISIONS),
            steps.c.entered_at.is_not(None),
        )
    )
    return weekly_turnaround(
        (stage, left_at, left_at - entered_at) for stage, left_at, entered_at in rows
    )


def _shares(session: Session, period: Period) -> list[Share]:
    counts = {
        action: int(n)
        for action, n in session.execute(
            select(Review.action, func.count())
            .where(
                Review.action.in_(_SHARE_ACTIONS),
                Review.created_at >= period.start_time,
                Review.created_at < period.end_time,
            )
            .group_by(Review.action)
        )
    }
    return decision_shares(counts)


def _feed_head(session: Session, at: dt.datetime) -> FeedHead | None:
    """The registry's feed serial at `at`: the current one if made by then, else the newest
    kept delta made by then (None when no kept state is that old)."""
    head = session.get(FeedStateRow, 1)
    if head is None:
        return None
    if head.created <= at:
        return FeedHead(head.session_id, head.serial)
    serial = session.scalar(
        select(func.max(FeedDeltaRow.serial)).where(
            FeedDeltaRow.session_id == head.session_id, FeedDeltaRow.created <= at
        )
    )
    return None if serial is None else FeedHead(head.session_id, int(serial))


def _freshness(
    session: Session, *, at: dt.datetime, interval: dt.timedelta
) -> dict[Freshness, int]:
    """Gateways by freshness class, from each gateway's latest report received by `at`."""
    latest = latest_report_ids(at).subquery()
    stale = case((GatewayReport.received_at < at - STALE_INTERVALS * interval, True), else_=False)
    groups = session.execute(
        select(stale, GatewayReport.feed_session, GatewayReport.feed_serial, func.count())
        .join(latest, GatewayReport.id == latest.c.last)
        .group_by(stale, GatewayReport.feed_session, GatewayReport.feed_serial)
    ).all()
    return freshness_counts(
        ((bool(s), fs, None if n is None else int(n), int(c)) for s, fs, n, c in groups),
        _feed_head(session, at),
    )


def _blocked(session: Session, period: Period, days: list[dt.date]) -> dict[str, list[int]]:
    counts = flows_per_day(session, verdict=BLOCKED_VERDICT, start=period.start, end=period.end)
    return daily_series(counts, days)
