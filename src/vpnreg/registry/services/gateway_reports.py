"""Gateway reports (ADR 0010): store what gateways send, and list the gateways' state.

`store_report` inserts a report and its hourly counts once per report id (a resend changes
nothing and says so), and adds them to the daily rollups (services.report_rollup) in the same
transaction; both tables are append-only, and no audit event is written per report
(the reports are the gateways' evidence, not registry decisions; see the ADR). `gateway_list`
gives each gateway's latest report with its lag behind the current feed serial.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vpnreg.core.gateway_report import Report, ReportError, check_report, counted_under, hour_of
from vpnreg.core.policy import Verdict
from vpnreg.registry.errors import FieldError, ValidationFailed
from vpnreg.registry.models import (
    Application,
    ApplicationPrefix,
    FeedDeltaRow,
    FeedStateRow,
    GatewayReport,
    GatewayReportCount,
)
from vpnreg.registry.services.report_rollup import add_report, latest_report_ids
from vpnreg.registry.services.transaction import service_transaction

__all__ = ["GatewayState", "gateway_list", "store_report"]

#: A gateway that has not reported for this many report intervals is flagged stale.
STALE_INTERVALS = 3
#: The interval gateways report at unless configured otherwise (the agent's report_interval_s).
REPORT_INTERVAL = dt.timedelta(minutes=5)


def store_report(session: Session, *, report: Report, token_name: str, now: dt.datetime) -> bool:
    """Store `report`; True when stored now, False when its report id was stored before.

    A report breaking core.gateway_report's rules raises ValidationFailed and nothing is stored.
    """
    try:
        check_report(report)
    except ReportError as exc:
        raise ValidationFailed([FieldError("body", "invalid", str(exc))]) from None
    known = select(GatewayReport.id).where(GatewayReport.report_id == report.report_id)
    try:
        with service_transaction(session):
            if session.scalar(known) is not None:
                return False
            row = GatewayReport(
                report_id=report.report_id,
                gateway_id=report.gateway_id,
                token_name=token_name,
                created=report.created,
                received_at=now,
                mode=report.mode,
                feed_session=None if report.feed is None else report.feed.session_id,
                feed_serial=None if report.feed is None else report.feed.serial,
                set_hash=None if report.feed is None else report.feed.set_hash,
            )
            session.add(row)
            session.flush()
            if report.counts:
                # one executemany, not an ORM object per row: a report holds up to MAX_ROWS rows
                session.execute(
                    insert(GatewayReportCount),
                    [
                        {
                            "report_id": row.id,
                            "hour": key.hour,
                            "protocol": key.protocol,
                            "verdict": key.verdict,
                            "registration_id": key.registration_id,
                            "prefix": key.prefix,
                            "flows": flows,
                        }
                        for key, flows in report.counts
                    ],
                )
            add_report(
                session,
                report_row_id=row.id,
                gateway_id=report.gateway_id,
                received_at=now,
                counts=report.counts,
            )
    except IntegrityError:
        # the same report id arrived twice at once: the other request stored it
        if session.scalar(known) is not None:
            return False
        raise
    return True


@dataclass(frozen=True)
class GatewayState:
    gateway_id: str
    last_report_at: dt.datetime
    mode: str
    feed_session: str | None
    applied_serial: int | None
    set_hash: str | None
    #: Serials behind the registry's current one (None: no feed applied, or another session).
    lag: int | None
    stale: bool
    #: The gateway's set hash differs from the registry's for that serial (None: not known).
    hash_mismatch: bool | None


def _registry_hash(session: Session, feed_session: str, serial: int) -> str | None:
    head = session.get(FeedStateRow, 1)
    if head is None or head.session_id != feed_session:
        return None
    if head.serial == serial:
        return head.set_hash
    return session.scalar(
        select(FeedDeltaRow.set_hash).where(
            FeedDeltaRow.serial == serial, FeedDeltaRow.session_id == feed_session
        )
    )


def gateway_list(
    session: Session, *, now: dt.datetime, interval: dt.timedelta = REPORT_INTERVAL
) -> list[GatewayState]:
    """Every gateway that ever reported, by id: its latest report and how it stands."""
    latest = latest_report_ids().subquery()
    rows = session.scalars(
        select(GatewayReport)
        .join(latest, GatewayReport.id == latest.c.last)
        .order_by(GatewayReport.gateway_id)
    ).all()
    head = session.get(FeedStateRow, 1)
    states = []
    for row in rows:
        lag = mismatch = None
        if row.feed_serial is not None and row.feed_session is not None and row.set_hash:
            if head is not None and head.session_id == row.feed_session:
                lag = max(0, head.serial - row.feed_serial)
            expected = _registry_hash(session, row.feed_session, row.feed_serial)
            mismatch = None if expected is None else expected != row.set_hash
        states.append(
            GatewayState(
                gateway_id=row.gateway_id,
                last_report_at=row.received_at,
                mode=row.mode,
                feed_session=row.feed_session,
                applied_serial=row.feed_serial,
                set_hash=row.set_hash,
                lag=lag,
                stale=now - row.received_at > STALE_INTERVALS * interval,
                hash_mismatch=mismatch,
            )
        )
    return states


#: How far back an application's page shows its flows as gateways counted them.
FLOWS_SHOWN = dt.timedelta(days=14)


@dataclass(frozen=True)
class RegistrationFlows:
    """One row of "why was I blocked?": a registration's flows in one hour at one gateway."""

    hour: dt.datetime
    gateway_id: str
    verdict: str
    flows: int
    #: The serial the gateway applied in its latest report (None: no feed held).
    applied_serial: int | None
    stale: bool
    #: None: flows the gateway counted for this registration. A /24 (/48): flows it counted as
    #: unregistered in that part of the registration's space since the registration took
    #: effect (a gateway on an older feed does not know the registration; the count may also
    #: hold other addresses of that /24).
    prefix: str | None = None


def registration_flows(
    session: Session,
    *,
    registration_id: int,
    now: dt.datetime,
    interval: dt.timedelta = REPORT_INTERVAL,
) -> list[RegistrationFlows]:
    """A registration's flows per hour, gateway and verdict over FLOWS_SHOWN, newest first, with
    each gateway's applied serial, so "registered but still blocked" points at the gateway."""
    since = now - FLOWS_SHOWN
    own = session.execute(
        select(
            GatewayReportCount.hour,
            GatewayReport.gateway_id,
            GatewayReportCount.verdict,
            func.sum(GatewayReportCount.flows),
        )
        .join(GatewayReport, GatewayReport.id == GatewayReportCount.report_id)
        .where(
            GatewayReportCount.registration_id == registration_id,
            GatewayReportCount.hour >= since,
        )
        .group_by(GatewayReportCount.hour, GatewayReport.gateway_id, GatewayReportCount.verdict)
    ).all()
    rows: list[tuple[dt.datetime, str, str, int, str | None]] = [
        (hour, gateway, verdict, flows, None) for hour, gateway, verdict, flows in own
    ]
    rows += _unregistered_in_space(session, registration_id, since)
    rows.sort(key=lambda r: (-r[0].timestamp(), r[1], r[4] or "", r[2]))
    gateways = {g.gateway_id: g for g in gateway_list(session, now=now, interval=interval)}
    return [
        RegistrationFlows(
            hour=hour,
            gateway_id=gateway_id,
            verdict=verdict,
            flows=int(flows),
            applied_serial=gateways[gateway_id].applied_serial,
            stale=gateways[gateway_id].stale,
            prefix=prefix,
        )
        for hour, gateway_id, verdict, flows, prefix in rows
    ]


def _unregistered_in_space(
    session: Session, registration_id: int, since: dt.datetime
) -> list[tuple[dt.datetime, str, str, int, str | None]]:
    """Flows gateways counted as unregistered in the /24s (/48s) of a prefix-bound
    registration's prefixes, from the hour it took effect: "registered but still blocked" by a
    gateway whose feed does not hold it yet."""
    began = session.scalar(select(Application.valid_from).where(Application.id == registration_id))
    if began is None:
        return []
    prefixes = session.scalars(
        select(ApplicationPrefix.prefix).where(ApplicationPrefix.application_id == registration_id)
    ).all()
    spaces = sorted({s for p in prefixes for s in counted_under(ipaddress.ip_network(p))})
    if not spaces:
        return []
    found = session.execute(
        select(
            GatewayReportCount.hour,
            GatewayReport.gateway_id,
            GatewayReportCount.verdict,
            func.sum(GatewayReportCount.flows),
            GatewayReportCount.prefix,
        )
        .join(GatewayReport, GatewayReport.id == GatewayReportCount.report_id)
        .where(
            GatewayReportCount.registration_id.is_(None),
            GatewayReportCount.prefix.in_(spaces),
            GatewayReportCount.verdict == Verdict.UNREGISTERED.value,
            GatewayReportCount.hour >= max(since, hour_of(began)),
        )
        .group_by(
            GatewayReportCount.hour,
            GatewayReport.gateway_id,
            GatewayReportCount.verdict,
            GatewayReportCount.prefix,
        )
    ).all()
    return [
        (hour, gateway, verdict, flows, prefix) for hour, gateway, verdict, flows, prefix in found
    ]
