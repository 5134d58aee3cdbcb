"""Who held an address when, through ISP bindings: the history read, and its retention.

Reading the history names subscribers and their registrations, so only the regulator's side
reads it (regulator, auditor), and every read is itself an audit event. Bindings older than the
retention period are deleted by maintenance; the audit event of each purge keeps the counts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from vpnreg.core.feed.entry import ANY_PORTS
from vpnreg.core.ipspace import PrefixError, parse_address
from vpnreg.core.review import Role, validity_end
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.claims import address_key
from vpnreg.registry.errors import FieldError, ValidationFailed
from vpnreg.registry.models import ISP, Application, Binding, BoundTo
from vpnreg.registry.services.actors import Actor, actor_name, require_role
from vpnreg.registry.services.bindings import widest_start
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.transaction import service_transaction

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "HeldAddress",
    "PurgeResult",
    "binding_history",
    "purge_bindings",
]

#: How long binding history is kept unless the settings say otherwise.
DEFAULT_RETENTION_DAYS = 180


@dataclass(frozen=True)
class HeldAddress:
    """One binding of the asked address over the asked period, and the registration it served."""

    address: str
    ports: tuple[int, int]
    isp: str
    subscriber_id: str
    session_id: str
    valid_from: dt.datetime
    #: Exclusive end: the binding's end, or its stop.
    until: dt.datetime
    stopped: bool
    #: The subscriber-bound registration of the subscriber valid at some time of the binding.
    tracking_number: str | None


def _period_problems(start: dt.datetime, end: dt.datetime) -> list[FieldError]:
    problems = [
        FieldError(name, "invalid", f"{name} needs a time zone offset", value.isoformat())
        for name, value in (("from", start), ("to", end))
        if value.tzinfo is None
    ]
    if not problems and end <= start:
        problems.append(FieldError("to", "invalid", "to must be after from", end.isoformat()))
    return problems


def binding_history(
    session: Session,
    *,
    actor: Actor,
    address: str,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    config: ServiceConfig,
) -> list[HeldAddress]:
    """Every binding covering `address` at some time in [start, end), oldest first, with the
    registration it served. Regulator and auditor only; the read is recorded in the audit log."""
    require_role(actor, Role.REGULATOR, Role.AUDITOR)
    try:
        ip = parse_address(address)
    except PrefixError as exc:
        raise ValidationFailed(
            [FieldError("address", str(exc.code), exc.message, address)]
        ) from None
    problems = _period_problems(start, end)
    if problems:
        raise ValidationFailed(problems)
    key = address_key(ip)
    with service_transaction(session):
        rows = session.execute(
            select(Binding, ISP.name)
            .join(ISP, ISP.id == Binding.isp_id)
            .where(
                Binding.range_start <= key,
                Binding.range_start >= widest_start(ipaddress.ip_network(ip), config.prefix_policy),
                Binding.range_end >= key,
                Binding.valid_from < end,
                Binding.valid_until > start,
                Binding.ended_at.is_(None) | (Binding.ended_at > start),
            )
            .order_by(Binding.valid_from, Binding.id)
        ).all()
        held = [
            _held(session, row, isp_name, config)
            for row, isp_name in rows
            # A stop whose start never arrived holds nothing.
            if row.valid_from < _end_of(row)
        ]
        append_event(
            session,
            time=now,
            actor=actor_name(actor),
            action="read_binding_history",
            object_type="address",
            object_id=str(ip),
            after={"from": _iso(start), "to": _iso(end), "bindings": len(held)},
        )
    return held


def _end_of(row: Binding) -> dt.datetime:
    return row.valid_until if row.ended_at is None else min(row.valid_until, row.ended_at)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _held(session: Session, row: Binding, isp_name: str, config: ServiceConfig) -> HeldAddress:
    end = _end_of(row)
    candidates = session.execute(
        select(Application.tracking_number, Application.valid_from, Application.valid_until)
        .where(
            Application.isp_id == row.isp_id,
            Application.subscriber_id == row.subscriber_id,
            Application.bound_to == BoundTo.SUBSCRIBER.value,
            Application.valid_from.is_not(None),
            Application.valid_from < end,
        )
        .order_by(Application.valid_from.desc())
    ).all()
    tracking = next(
        (
            number
            for number, valid_from, valid_until in candidates
            if valid_until is not None and validity_end(valid_until, config.tz) > row.valid_from
        ),
        None,
    )
    ports = ANY_PORTS
    if row.port_lo is not None and row.port_hi is not None:
        ports = (row.port_lo, row.port_hi)
    return HeldAddress(
        address=row.address,
        ports=ports,
        isp=isp_name,
        subscriber_id=row.subscriber_id,
        session_id=row.session_id,
        valid_from=row.valid_from,
        until=end,
        stopped=row.ended_at is not None,
        tracking_number=tracking,
    )


@dataclass(frozen=True)
class PurgeResult:
    """What a purge deleted: bindings that ended before `cutoff`, counted per ISP."""

    cutoff: dt.datetime
    deleted: int
    by_isp: dict[str, int]


def purge_bindings(
    session: Session, *, now: dt.datetime, retention_days: int, actor: Actor = "system"
) -> PurgeResult:
    """Delete the bindings that ended more than `retention_days` ago; one audit event keeps
    the counts (per ISP), so the log still says how many there were."""
    if retention_days < 1:
        raise ValidationFailed(
            [FieldError("retention_days", "invalid", "keep at least one day", retention_days)]
        )
    cutoff = now - dt.timedelta(days=retention_days)
    old = (Binding.valid_until <= cutoff) | (Binding.ended_at <= cutoff)
    with service_transaction(session):
        counts: Sequence[tuple[str, int]] = [
            (name, int(count))
            for name, count in session.execute(
                select(ISP.name, func.count(Binding.id))
                .join(ISP, ISP.id == Binding.isp_id)
                .where(old)
                .group_by(ISP.name)
                .order_by(ISP.name)
            ).all()
        ]
        total = sum(count for _, count in counts)
        if total:
            session.execute(delete(Binding).where(old).execution_options(synchronize_session=False))
        append_event(
            session,
            time=now,
            actor=actor_name(actor),
            action="purge_bindings",
            object_type="bindings",
            object_id="*",
            after={
                "cutoff": _iso(cutoff),
                "retention_days": retention_days,
                "deleted": total,
                "by_isp": dict(counts),
            },
        )
    return PurgeResult(cutoff=cutoff, deleted=total, by_isp=dict(counts))
