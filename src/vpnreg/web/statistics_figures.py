"""The statistics as figures: for each chart its title, what it shows, its data as a table and
the series the chart draws; and the same tables as CSV and JSON.

One shape for every output (the page, its downloads, the monthly report's HTML and PDF), so
the chart, the table beside it and the downloaded file cannot disagree: each is made from the
same `Figure`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Literal

from vpnreg.core.statistics import Freshness
from vpnreg.registry.services.stats import STAGES, Statistics

#: How a chart draws its series: lines over the x labels, bars stacked per x label, one
#: horizontal bar per x label, or one small panel of lines per series group.
ChartKind = Literal["lines", "stacked", "hbars", "panels"]
Cell = str | int | float | None


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float | None, ...]
    #: Series in one panel share a group ("panels" charts); dashed marks the second of a pair.
    group: str = ""
    dashed: bool = False


@dataclass(frozen=True)
class Figure:
    """One chart with its data; hashable, so a rendered chart can be cached by its figure."""

    slug: str
    title: str
    #: One sentence saying what is counted and how (the figure's caption).
    description: str
    kind: ChartKind
    x_labels: tuple[str, ...]
    series: tuple[Series, ...]
    y_label: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


def _hours(value: float) -> float:
    return round(value, 1)


def figures(stats: Statistics) -> list[Figure]:
    """The five figures of `stats`, in the order the page shows them."""
    days = tuple(day.isoformat() for day in stats.days)
    return [
        _in_force(stats, days),
        _turnaround(stats),
        _shares(stats),
        _freshness(stats),
        _blocked(stats, days),
    ]


def _in_force(stats: Statistics, days: tuple[str, ...]) -> Figure:
    categories = list(stats.in_force)
    return Figure(
        slug="registrations-in-force",
        title="Registrations in force by category",
        description="Registrations in an active or expiring state at the end of each UTC day.",
        kind="lines",
        x_labels=days,
        series=tuple(
            Series(c.replace("_", " "), tuple(map(float, stats.in_force[c]))) for c in categories
        ),
        y_label="registrations",
        columns=("Day", *(c.replace("_", " ") for c in categories)),
        rows=tuple(
            (day, *(stats.in_force[c][i] for c in categories)) for i, day in enumerate(days)
        ),
    )


def _turnaround(stats: Statistics) -> Figure:
    weeks = tuple(w.isoformat() for w in stats.period.weeks())
    found = {(t.week.isoformat(), t.stage): t for t in stats.turnaround}
    series: list[Series] = []
    for stage, label in STAGES.items():
        for name, dashed in (("median", False), ("90th percentile", True)):
            values = tuple(
                None
                if (t := found.get((w, stage))) is None
                else _hours(t.median_hours if not dashed else t.p90_hours)
                for w in weeks
            )
            series.append(Series(name, values, group=f"Waiting for {label}", dashed=dashed))
    return Figure(
        slug="review-turnaround",
        title="Review turnaround per stage",
        description="Hours from entering a review stage to the reviewer's decision, median and "
        "90th percentile of the decisions taken each ISO week (named by its Monday).",
        kind="panels",
        x_labels=weeks,
        series=tuple(series),
        y_label="hours",
        columns=("Week", "Waiting for", "Decisions", "Median (h)", "90th percentile (h)"),
        rows=tuple(
            (
                t.week.isoformat(),
                STAGES[t.stage],
                t.decisions,
                _hours(t.median_hours),
                _hours(t.p90_hours),
            )
            for t in stats.turnaround
        ),
    )


def _shares(stats: Statistics) -> Figure:
    def percent(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return Figure(
        slug="decision-shares",
        title="Approved, rejected, appealed, overturned",
        description="Approvals and rejections as shares of all decisions in the period, appeals "
        "as a share of the rejections, overturns as a share of the appeals decided.",
        kind="hbars",
        x_labels=tuple(s.outcome for s in stats.shares),
        series=(Series("share", tuple(percent(s.percent) for s in stats.shares)),),
        y_label="per cent",
        columns=("Outcome", "Count", "Of", "Base", "Share (%)"),
        rows=tuple((s.outcome, s.count, s.of, s.base, percent(s.percent)) for s in stats.shares),
    )


def _freshness(stats: Statistics) -> Figure:
    # short: the labels sit beside the bars, on a phone too
    descriptions = {
        Freshness.CURRENT: "current serial",
        Freshness.BEHIND: "older serial",
        Freshness.OTHER_SESSION: "other feed session",
        Freshness.NO_FEED: "no feed held",
        Freshness.STALE: f"silent {stats.stale_after.total_seconds() / 60:g}+ min",
    }
    labels = tuple(descriptions[f] for f in stats.freshness)
    return Figure(
        slug="feed-freshness",
        title="Gateways' feed freshness",
        # No time in the text: an unchanged figure keeps its cached chart (web.charts.svg).
        description="Gateways by the feed state of their latest report when the figures were "
        "taken (a month's report: at its end): the registry's current serial or an older one, "
        "another (or no longer known) feed session, no feed, or silent (no recent report).",
        kind="hbars",
        x_labels=labels,
        series=(Series("gateways", tuple(float(n) for n in stats.freshness.values())),),
        y_label="gateways",
        columns=("Feed state", "Gateways"),
        rows=tuple(zip(labels, stats.freshness.values(), strict=True)),
    )


def _blocked(stats: Statistics, days: tuple[str, ...]) -> Figure:
    protocols = list(stats.blocked)
    totals = [sum(stats.blocked[p][i] for p in protocols) for i in range(len(days))]
    return Figure(
        slug="blocked-flows",
        title="VPN flows blocked per protocol per day",
        description="Unregistered VPN flows the gateways blocked (dry-run gateways: would have "
        "blocked) per UTC day, summed from their hourly reports.",
        kind="stacked",
        x_labels=days,
        series=tuple(Series(p, tuple(map(float, stats.blocked[p]))) for p in protocols),
        y_label="flows",
        columns=("Day", *protocols, "Total"),
        rows=tuple(
            (day, *(stats.blocked[p][i] for p in protocols), totals[i])
            for i, day in enumerate(days)
        ),
    )


def figure_csv(figure: Figure) -> str:
    """The figure's table as CSV (RFC 4180, a header row, empty cells for no value)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(figure.columns)
    writer.writerows(["" if cell is None else cell for cell in row] for row in figure.rows)
    return out.getvalue()


def statistics_json(stats: Statistics, shown: list[Figure]) -> dict[str, Any]:
    """Every figure's table, keyed by its slug, with the period they cover."""
    return {
        "period": {
            "label": stats.period.label,
            "start": stats.period.start.isoformat(),
            "end": stats.period.end.isoformat(),
            "days_are": "UTC",
        },
        "as_of": stats.as_of.isoformat(),
        "figures": {
            f.slug: {
                "title": f.title,
                "description": f.description,
                "columns": list(f.columns),
                "rows": [list(row) for row in f.rows],
            }
            for f in shown
        },
    }
