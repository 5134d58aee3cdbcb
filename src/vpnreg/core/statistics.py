"""The arithmetic of the public statistics: periods of whole UTC days, weekly buckets,
percentiles, running totals, decision shares and gateways' feed freshness classes.

Pure: the callers pass the moments, the counts and the durations in; nothing here reads a clock
or a database. Days are UTC days throughout (gateway reports count by UTC hour), and a week is
the ISO week, named by its Monday.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

DAY = dt.timedelta(days=1)
_MONTH = re.compile(r"(\d{4})-(\d{2})")


class PeriodError(ValueError):
    """A period that cannot be used; the message says why."""


@dataclass(frozen=True)
class Period:
    """Whole UTC days from `start` up to `end` (exclusive)."""

    start: dt.date
    end: dt.date
    #: What the period is called in titles and file names: "2026-11" or "last 90 days".
    label: str

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise PeriodError(f"a period must end after it starts: {self.start} to {self.end}")

    @property
    def start_time(self) -> dt.datetime:
        return midnight(self.start)

    @property
    def end_time(self) -> dt.datetime:
        return midnight(self.end)

    def days(self) -> list[dt.date]:
        return [self.start + n * DAY for n in range((self.end - self.start).days)]

    def weeks(self) -> list[dt.date]:
        """The Mondays of the ISO weeks the period touches."""
        return sorted({week_of(day) for day in self.days()})


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def utc_day(moment: dt.datetime) -> dt.date:
    """The UTC date holding `moment` (aware)."""
    if moment.tzinfo is None:
        raise PeriodError("time must carry its time zone")
    return moment.astimezone(dt.UTC).date()


def week_of(day: dt.date) -> dt.date:
    """The Monday of `day`'s ISO week."""
    return day - dt.timedelta(days=day.weekday())


def month_period(text: str) -> Period:
    """The calendar month `YYYY-MM` as a period; PeriodError for anything else."""
    match = _MONTH.fullmatch(text.strip())
    if match is None:
        raise PeriodError(f"month {text!r}: expected YYYY-MM, e.g. 2026-11")
    year, month = int(match[1]), int(match[2])
    if not 1 <= month <= 12 or year < 1970:
        raise PeriodError(f"month {text!r}: no such month")
    start = dt.date(year, month, 1)
    end = dt.date(year + 1, 1, 1) if month == 12 else dt.date(year, month + 1, 1)
    return Period(start, end, f"{year:04d}-{month:02d}")


def trailing_days(now: dt.datetime, days: int) -> Period:
    """The `days` UTC days up to and including today (`now`'s day)."""
    if days < 1:
        raise PeriodError("a period holds at least one day")
    end = utc_day(now) + DAY
    return Period(end - days * DAY, end, f"last {days} days")


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-quantile (0 <= q <= 1) of `values`, interpolating linearly between the closest
    ranks (as PostgreSQL's percentile_cont and numpy's default do)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} outside [0, 1]")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def running_totals(
    *,
    baseline: Mapping[str, int],
    changes: Mapping[tuple[dt.date, str], int],
    days: Sequence[dt.date],
) -> dict[str, list[int]]:
    """Per key, the total at the end of each of `days`: `baseline` (the totals before the first
    day) plus every change dated up to that day. Changes dated outside `days` are the caller's
    mistake (fold earlier ones into the baseline) and raise ValueError."""
    known = set(days)
    stray = sorted(day for day, _ in changes if day not in known)
    if stray:
        raise ValueError(f"changes dated outside the days given: {stray[0]}")
    keys = sorted(set(baseline) | {key for _, key in changes})
    series: dict[str, list[int]] = {}
    for key in keys:
        total = baseline.get(key, 0)
        points = []
        for day in days:
            total += changes.get((day, key), 0)
            points.append(total)
        series[key] = points
    return series


def daily_series(
    counts: Mapping[tuple[dt.date, str], int], days: Sequence[dt.date]
) -> dict[str, list[int]]:
    """Per key (sorted), its count on each of `days` (0 where none is given)."""
    keys = sorted({key for _, key in counts})
    return {key: [counts.get((day, key), 0) for day in days] for key in keys}


@dataclass(frozen=True)
class Turnaround:
    """How long the steps that left one review stage in one week took."""

    week: dt.date
    stage: str
    decisions: int
    median_hours: float
    p90_hours: float


def weekly_turnaround(
    durations: Iterable[tuple[str, dt.datetime, dt.timedelta]],
) -> list[Turnaround]:
    """Median and 90th percentile per (ISO week of leaving the stage, stage), from
    (stage, left at, time spent in it); ordered by week, then stage."""
    buckets: dict[tuple[dt.date, str], list[float]] = defaultdict(list)
    for stage, left_at, spent in durations:
        if spent < dt.timedelta(0):
            raise ValueError(f"stage {stage} left before it was entered ({spent})")
        buckets[(week_of(utc_day(left_at)), stage)].append(spent.total_seconds() / 3600)
    return [
        Turnaround(
            week=week,
            stage=stage,
            decisions=len(hours),
            median_hours=percentile(hours, 0.5),
            p90_hours=percentile(hours, 0.9),
        )
        for (week, stage), hours in sorted(buckets.items())
    ]


@dataclass(frozen=True)
class Share:
    """One outcome as a share of the decisions it is one of: `count` of `base` (None: no base)."""

    outcome: str
    count: int
    base: int
    of: str

    @property
    def percent(self) -> float | None:
        return None if self.base == 0 else 100.0 * self.count / self.base


def decision_shares(actions: Mapping[str, int]) -> list[Share]:
    """Approved and rejected as shares of the regulator's and reviewers' decisions (approve +
    reject), appealed as a share of the rejections, overturned as a share of the appeals decided
    (overturn + uphold); `actions` counts review actions by name."""
    approve, reject = actions.get("approve", 0), actions.get("reject", 0)
    appeal = actions.get("appeal", 0)
    overturn, uphold = actions.get("overturn", 0), actions.get("uphold", 0)
    return [
        Share("approved", approve, approve + reject, "decisions"),
        Share("rejected", reject, approve + reject, "decisions"),
        Share("appealed", appeal, reject, "rejections"),
        Share("overturned", overturn, overturn + uphold, "appeals decided"),
    ]


class Freshness(StrEnum):
    """How a gateway's feed stands against the registry's, from its latest report."""

    CURRENT = "current serial"
    BEHIND = "serials behind"
    OTHER_SESSION = "other feed session"
    NO_FEED = "no feed held"
    STALE = "not reporting"


@dataclass(frozen=True)
class FeedHead:
    """The registry's feed state at the moment the freshness is taken (None: no feed yet)."""

    session_id: str
    serial: int


def freshness(
    *, stale: bool, feed_session: str | None, serial: int | None, head: FeedHead | None
) -> Freshness:
    """The class of one gateway: silence first (its report says nothing current), then what it
    applies. A serial ahead of the head (a report read against an older head) counts as current."""
    if stale:
        return Freshness.STALE
    if feed_session is None or serial is None:
        return Freshness.NO_FEED
    if head is None or feed_session != head.session_id:
        return Freshness.OTHER_SESSION
    return Freshness.CURRENT if serial >= head.serial else Freshness.BEHIND


def freshness_counts(
    groups: Iterable[tuple[bool, str | None, int | None, int]], head: FeedHead | None
) -> dict[Freshness, int]:
    """Gateways per class, every class present, from (stale, session, serial, gateways) groups."""
    counts = dict.fromkeys(Freshness, 0)
    for stale, feed_session, serial, gateways in groups:
        counts[freshness(stale=stale, feed_session=feed_session, serial=serial, head=head)] += (
            gateways
        )
    return counts
