"""Gateway reports read back day by day, for the analytics export (ADR 0015).

Two kinds of rows, both keyed by a UTC day: the counts whose hour falls on that day, each with
its report's fields (gateway, report id, mode, feed applied), and the reports that arrived on
that day (one row each, counts or not: a gateway with no VPN traffic still says which serial it
applies). Rows are streamed in batches, so a day of a national deployment never sits in memory
whole. Nothing here writes; the tables stay as ADR 0010 keeps them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vpnreg.registry.models import GatewayReport, GatewayReportCount

__all__ = ["BATCH_ROWS", "COUNT_FIELDS", "REPORT_FIELDS", "count_rows", "days", "report_rows"]

#: Rows fetched from the database (and written as one Parquet row group) at a time.
BATCH_ROWS = 50_000

#: The fields of one exported count row, in order.
COUNT_FIELDS = (
    "gateway_id",
    "report_id",
    "hour",
    "protocol",
    "verdict",
    "registration_id",
    "prefix",
    "flows",
    "mode",
    "feed_session",
    "feed_serial",
    "set_hash",
)
#: The fields of one exported report row, in order.
REPORT_FIELDS = (
    "gateway_id",
    "report_id",
    "created",
    "received_at",
    "mode",
    "feed_session",
    "feed_serial",
    "set_hash",
)

Batch = Sequence[tuple[Any, ...]]


def _bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def days(session: Session, *, since: dt.date | None = None) -> list[dt.date]:
    """Every UTC day from `since` (or the first report) to the last day holding a count's hour
    or a report's arrival; days in between without either are included (they export nothing)."""
    start = None if since is None else _bounds(since)[0]
    spans = []
    for column in (GatewayReportCount.hour, GatewayReport.received_at):
        query = select(func.min(column), func.max(column))
        if start is not None:
            query = query.where(column >= start)
        low, high = session.execute(query).one()
        if low is not None:
            spans.append((low, high))
    if not spans:
        return []
    first = min(low for low, _ in spans).astimezone(dt.UTC).date()
    last = max(high for _, high in spans).astimezone(dt.UTC).date()
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def count_rows(session: Session, *, day: dt.date) -> Iterator[Batch]:
    """The counts whose hour is on `day`, with their report's fields (COUNT_FIELDS), in batches
    ordered by hour, gateway and report: the same day exports the same rows in the same order."""
    start, end = _bounds(day)
    query = (
        select(
            GatewayReport.gateway_id,
            GatewayReport.report_id,
            GatewayReportCount.hour,
            GatewayReportCount.protocol,
            GatewayReportCount.verdict,
            GatewayReportCount.registration_id,
            GatewayReportCount.prefix,
            GatewayReportCount.flows,
            GatewayReport.mode,
            GatewayReport.feed_session,
            GatewayReport.feed_serial,
            GatewayReport.set_hash,
        )
        .join(GatewayReport, GatewayReport.id == GatewayReportCount.report_id)
        .where(GatewayReportCount.hour >= start, GatewayReportCount.hour < end)
        .order_by(GatewayReportCount.hour, GatewayReport.gateway_id, GatewayReportCount.id)
    )
    yield from _batches(session, query)


def report_rows(session: Session, *, day: dt.date) -> Iterator[Batch]:
    """The reports that arrived on `day` (REPORT_FIELDS), in batches, in arrival order."""
    start, end = _bounds(day)
    query = (
        select(
            GatewayReport.gateway_id,
            GatewayReport.report_id,
            GatewayReport.created,
            GatewayReport.received_at,
            GatewayReport.mode,
            GatewayReport.feed_session,
            GatewayReport.feed_serial,
            GatewayReport.set_hash,
        )
        .where(GatewayReport.received_at >= start, GatewayReport.received_at < end)
        .order_by(GatewayReport.received_at, GatewayReport.id)
    )
    yield from _batches(session, query)


def _batches(session: Session, query: Any) -> Iterator[Batch]:
    # yield_per streams on PostgreSQL (a server-side cursor) and fetches in steps on SQLite
    result = session.execute(query.execution_options(yield_per=BATCH_ROWS))
    for part in result.partitions():
        yield [tuple(row) for row in part]
