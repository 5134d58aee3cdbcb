"""core.statistics: periods, weeks, percentiles, running totals, shares, freshness classes."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vpnreg.core.statistics import (
    FeedHead,
    Freshness,
    Period,
    PeriodError,
    daily_series,
    decision_shares,
    freshness,
    freshness_counts,
    month_period,
    percentile,
    running_totals,
    trailing_days,
    week_of,
    weekly_turnaround,
)

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        pytest.param("2026-11", dt.date(2026, 11, 1), dt.date(2026, 12, 1), id="november"),
        pytest.param("2026-12", dt.date(2026, 12, 1), dt.date(2027, 1, 1), id="december"),
        pytest.param("2028-02", dt.date(2028, 2, 1), dt.date(2028, 3, 1), id="leap-february"),
    ],
)
def test_a_month_is_its_calendar_days(text: str, start: dt.date, end: dt.date) -> None:
    period = month_period(text)
    assert (period.start, period.end, period.label) == (start, end, text)
    assert period.days()[0] == start and period.days()[-1] == end - dt.timedelta(days=1)
    assert period.start_time == dt.datetime(start.year, start.month, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("2026-13", id="month-13"),
        pytest.param("2026-00", id="month-0"),
        pytest.param("2026-1", id="one-digit"),
        pytest.param("11-2026", id="reversed"),
        pytest.param("2026-11-01", id="a-day"),
        pytest.param("", id="empty"),
    ],
)
def test_a_bad_month_is_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(PeriodError, match="month"):
        month_period(text)


def test_trailing_days_end_with_today_and_need_an_aware_time() -> None:
    period = trailing_days(dt.datetime(2026, 3, 1, 23, 59, tzinfo=dt.UTC), 7)
    assert (period.start, period.end) == (dt.date(2026, 2, 23), dt.date(2026, 3, 2))
    assert len(period.days()) == 7
    # 03:00 in Karachi on the 2nd is still the 1st in UTC
    karachi = dt.timezone(dt.timedelta(hours=5))
    assert trailing_days(dt.datetime(2026, 3, 2, 3, tzinfo=karachi), 1).start == dt.date(2026, 3, 1)
    with pytest.raises(PeriodError):
        trailing_days(dt.datetime(2026, 3, 1), 7)
    with pytest.raises(PeriodError):
        trailing_days(dt.datetime(2026, 3, 1, tzinfo=dt.UTC), 0)


@given(st.dates(min_value=dt.date(1971, 1, 1), max_value=dt.date(2999, 1, 1)))
def test_a_week_is_named_by_its_iso_monday(day: dt.date) -> None:
    monday = week_of(day)
    assert monday.weekday() == 0 and 0 <= (day - monday).days < 7
    assert monday.isocalendar()[:2] == day.isocalendar()[:2]


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        pytest.param([5.0], 0.9, 5.0, id="one-value"),
        pytest.param([1.0, 2.0, 4.0], 0.5, 2.0, id="odd-median"),
        pytest.param([4.0, 1.0, 3.0, 2.0], 0.5, 2.5, id="even-median-between"),
        pytest.param([1.0, 2.0, 4.0], 0.9, 3.6, id="p90-interpolated"),
        pytest.param(list(map(float, range(1, 11))), 0.9, 9.1, id="p90-of-ten"),
        pytest.param([3.0, 1.0], 0.0, 1.0, id="minimum"),
        pytest.param([3.0, 1.0], 1.0, 3.0, id="maximum"),
    ],
)
def test_percentile_interpolates_between_closest_ranks(
    values: list[float], q: float, expected: float
) -> None:
    assert percentile(values, q) == pytest.approx(expected)


@given(st.lists(finite, min_size=1, max_size=50), st.floats(min_value=0, max_value=1))
def test_percentile_lies_within_the_values_and_grows_with_q(values: list[float], q: float) -> None:
    value = percentile(values, q)
    assert min(values) <= value <= max(values)
    assert percentile(values, 0) == min(values) and percentile(values, 1) == max(values)
    assert percentile(values, min(1.0, q + 0.1)) >= value - 1e-6 * max(1.0, abs(value))


@given(st.lists(finite, min_size=1, max_size=50))
def test_the_median_splits_the_values(values: list[float]) -> None:
    median = percentile(values, 0.5)
    assert sum(v <= median for v in values) >= len(values) / 2
    assert sum(v >= median for v in values) >= len(values) / 2


@pytest.mark.parametrize(
    ("values", "q"), [pytest.param([], 0.5, id="empty"), pytest.param([1.0], 1.5, id="q>1")]
)
def test_percentile_refuses_what_has_none(values: list[float], q: float) -> None:
    with pytest.raises(ValueError, match=r"percentile|quantile"):
        percentile(values, q)


days_strategy = st.integers(min_value=1, max_value=40).map(
    lambda n: [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(n)]
)


@given(
    days_strategy,
    st.dictionaries(st.sampled_from(["bank", "telecom"]), st.integers(0, 50)),
    st.data(),
)
def test_running_totals_agree_with_counting_each_day_from_scratch(
    days: list[dt.date], baseline: dict[str, int], data: st.DataObject
) -> None:
    changes = data.draw(
        st.dictionaries(
            st.tuples(st.sampled_from(days), st.sampled_from(["bank", "telecom", "ngo"])),
            st.integers(-5, 5),
        )
    )
    series = running_totals(baseline=baseline, changes=changes, days=days)
    assert set(series) == set(baseline) | {k for _, k in changes}
    for key, points in series.items():
        for index, day in enumerate(days):
            brute = baseline.get(key, 0) + sum(
                n for (d, k), n in changes.items() if k == key and d <= day
            )
            assert points[index] == brute


def test_running_totals_refuse_a_change_outside_the_days() -> None:
    with pytest.raises(ValueError, match="outside"):
        running_totals(
            baseline={}, changes={(dt.date(2025, 1, 1), "bank"): 1}, days=[dt.date(2026, 1, 1)]
        )


def test_daily_series_fill_days_without_counts_with_zero() -> None:
    days = [dt.date(2026, 1, d) for d in (1, 2, 3)]
    counts = {(days[1], "wireguard"): 4, (days[2], "openvpn"): 1}
    assert daily_series(counts, days) == {"openvpn": [0, 0, 1], "wireguard": [0, 4, 0]}


def test_weekly_turnaround_buckets_by_the_week_a_stage_is_left() -> None:
    sunday = dt.datetime(2026, 1, 11, 23, tzinfo=dt.UTC)
    monday = sunday + dt.timedelta(hours=2)
    hours = dt.timedelta(hours=1)
    rows = weekly_turnaround(
        [
            ("submitted", sunday, 2 * hours),
            ("submitted", sunday, 4 * hours),
            ("submitted", monday, 10 * hours),
            ("appealed", sunday, 30 * hours),
        ]
    )
    assert [(r.week, r.stage, r.decisions, r.median_hours) for r in rows] == [
        (dt.date(2026, 1, 5), "appealed", 1, 30.0),
        (dt.date(2026, 1, 5), "submitted", 2, 3.0),
        (dt.date(2026, 1, 12), "submitted", 1, 10.0),
    ]
    assert rows[1].p90_hours == pytest.approx(3.8)
    with pytest.raises(ValueError, match="before it was entered"):
        weekly_turnaround([("submitted", sunday, -hours)])


def test_shares_take_each_outcome_against_its_own_base() -> None:
    shares = decision_shares({"approve": 6, "reject": 2, "appeal": 1, "uphold": 1, "withdraw": 9})
    assert [(s.outcome, s.count, s.base, s.percent) for s in shares] == [
        ("approved", 6, 8, 75.0),
        ("rejected", 2, 8, 25.0),
        ("appealed", 1, 2, 50.0),
        ("overturned", 0, 1, 0.0),
    ]
    assert all(s.percent is None for s in decision_shares({}))


HEAD = FeedHead("s" * 32, 10)


@pytest.mark.parametrize(
    ("stale", "session", "serial", "head", "expected"),
    [
        pytest.param(False, HEAD.session_id, 10, HEAD, Freshness.CURRENT, id="current"),
        pytest.param(False, HEAD.session_id, 11, HEAD, Freshness.CURRENT, id="ahead-of-old-head"),
        pytest.param(False, HEAD.session_id, 9, HEAD, Freshness.BEHIND, id="behind"),
        pytest.param(False, "o" * 32, 10, HEAD, Freshness.OTHER_SESSION, id="other-session"),
        pytest.param(False, HEAD.session_id, 10, None, Freshness.OTHER_SESSION, id="head-unknown"),
        pytest.param(False, None, None, HEAD, Freshness.NO_FEED, id="no-feed"),
        pytest.param(True, HEAD.session_id, 10, HEAD, Freshness.STALE, id="stale-first"),
    ],
)
def test_freshness_classes(
    stale: bool, session: str | None, serial: int | None, head: FeedHead | None, expected: Freshness
) -> None:
    assert freshness(stale=stale, feed_session=session, serial=serial, head=head) is expected


def test_freshness_counts_add_groups_and_name_every_class() -> None:
    counts = freshness_counts(
        [(False, HEAD.session_id, 10, 3), (False, HEAD.session_id, 10, 2), (True, None, None, 1)],
        HEAD,
    )
    assert list(counts) == list(Freshness)
    assert counts[Freshness.CURRENT] == 5 and counts[Freshness.STALE] == 1
    assert counts[Freshness.BEHIND] == 0


def test_a_period_must_end_after_it_starts() -> None:
    with pytest.raises(PeriodError, match="end after"):
        Period(dt.date(2026, 1, 2), dt.date(2026, 1, 2), "nothing")
