"""The daily rollups of gateway reports (migration 0014, ADR 0010's dated section): kept on
ingest, read by the statistics and the gateway list instead of every report and count row.

- `gateway_flow_days`: flows per UTC day (of the count's hour), gateway, protocol and verdict.
- `gateway_report_days`: per UTC day of receipt and gateway, its highest report id.

`add_report` runs inside store_report's unit, after the report row is inserted, so a report
and its rollup are stored together or not at all, and a resend (stored nothing) adds nothing.
Rows are upserted in one order (the day row, then the flow rows by key), so two reports of one
gateway arriving at once wait for each other instead of deadlocking; reports of different
gateways touch different rows. Migration 0014 fills both tables from the stored reports with
the same definitions in SQL.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, case, func, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from vpnreg.core.gateway_report import CountKey
from vpnreg.core.statistics import midnight, utc_day
from vpnreg.registry.models import GatewayFlowDay, GatewayReport, GatewayReportDay

__all__ = ["add_report", "flows_per_day", "latest_report_ids"]


def _insert(session: Session, entity: type[Any]) -> Any:
    """INSERT for `entity` in the session's dialect, which both backends let end in
    ON CONFLICT DO UPDATE (an upsert in one statement)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(entity)
    return sqlite.insert(entity)


def add_report(
    session: Session,
    *,
    report_row_id: int,
    gateway_id: str,
    received_at: dt.datetime,
    counts: Iterable[tuple[CountKey, int]],
) -> None:
    """Add one newly stored report to the rollups (inside the unit that stored it)."""
    day = _insert(session, GatewayReportDay)
    session.execute(
        day.on_conflict_do_update(
            index_elements=[GatewayReportDay.day, GatewayReportDay.gateway_id],
            set_={
                # ids grow, but two units of one gateway may commit out of order: keep the max
                "last_report_id": case(
                    (
                        day.excluded.last_report_id > GatewayReportDay.last_report_id,
                        day.excluded.last_report_id,
                    ),
                    else_=GatewayReportDay.last_report_id,
                )
            },
        ),
        [{"day": utc_day(received_at), "gateway_id": gateway_id, "last_report_id": report_row_id}],
    )
    sums: dict[tuple[dt.date, str, str], int] = defaultdict(int)
    for key, flows in counts:
        sums[(utc_day(key.hour), key.protocol, key.verdict)] += flows
    if not sums:
        return
    flow = _insert(session, GatewayFlowDay)
    session.execute(
        flow.on_conflict_do_update(
            index_elements=[
                GatewayFlowDay.day,
                GatewayFlowDay.gateway_id,
                GatewayFlowDay.protocol,
                GatewayFlowDay.verdict,
            ],
            set_={"flows": GatewayFlowDay.flows + flow.excluded.flows},
        ),
        [
            {
                "day": d,
                "gateway_id": gateway_id,
                "protocol": protocol,
                "verdict": verdict,
                "flows": n,
            }
            for (d, protocol, verdict), n in sorted(sums.items())
        ],
    )


def flows_per_day(
    session: Session, *, verdict: str, start: dt.date, end: dt.date
) -> dict[tuple[dt.date, str], int]:
    """Flows with `verdict` per (UTC day, protocol), days from `start` up to `end` (exclusive)."""
    rows = session.execute(
        select(GatewayFlowDay.day, GatewayFlowDay.protocol, func.sum(GatewayFlowDay.flows))
        .where(
            GatewayFlowDay.verdict == verdict,
            GatewayFlowDay.day >= start,
            GatewayFlowDay.day < end,
        )
        .group_by(GatewayFlowDay.day, GatewayFlowDay.protocol)
    )
    return {(day, protocol): int(n) for day, protocol, n in rows}


def latest_report_ids(at: dt.datetime | None = None) -> Select[str, int]:
    """A query of (gateway id, id of its latest report received by `at`; None: ever), the
    latest being the highest id, as `max(id) ... GROUP BY gateway_id` over every report says.

    From the rollup: the last report of each day before `at`'s day; on `at`'s day, the day's
    last report when received by `at`, else (a report came in after `at`) that gateway's
    reports of the day up to `at` (index on gateway and time: one day of one gateway).
    """
    days = GatewayReportDay
    if at is None:
        return select(days.gateway_id, func.max(days.last_report_id).label("last")).group_by(
            days.gateway_id
        )
    today = utc_day(at)
    before = select(days.gateway_id, days.last_report_id.label("last")).where(days.day < today)
    on_day = select(days.gateway_id, days.last_report_id).join(
        GatewayReport, GatewayReport.id == days.last_report_id
    )
    in_time = on_day.where(days.day == today, GatewayReport.received_at <= at)
    late = select(days.gateway_id).join(GatewayReport, GatewayReport.id == days.last_report_id)
    late = late.where(days.day == today, GatewayReport.received_at > at)
    up_to_at = select(GatewayReport.gateway_id, GatewayReport.id).where(
        GatewayReport.gateway_id.in_(late),
        GatewayReport.received_at >= midnight(today),
        GatewayReport.received_at <= at,
    )
    candidates = union_all(before, in_time, up_to_at).subquery()
    gateway = candidates.c.gateway_id
    return select(gateway, func.max(candidates.c.last).label("last")).group_by(gateway)
