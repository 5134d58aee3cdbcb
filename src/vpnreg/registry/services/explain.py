"""Why was this address blocked? (`vpnreg explain`, the portal's /explain): the gateways' verdicts
for an address or prefix from their reports (ADR 0010), beside the registry's own answer.

Reports count flows per registration and, for unregistered traffic, per domestic /24 or /48, so
an address is explained through the registrations that hold it (their prefixes, or an ISP's
binding at the asked time) and through the /24 (/48) it lies in. Each row carries the feed
serial and set hash the gateway applied in those reports, whether that serial was the
registry's current one then, and the rule the verdict implies (core.verdict_rule: derived from
the registration's terms, since reports do not carry it; ADR 0012).

Regulator, auditor and admin only, and every explanation is an audit event ("read_explain"),
as a binding history read is: it tells who holds an address and how its traffic fared.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vpnreg.core.gateway_report import PREFIX_LENGTH, hour_of
from vpnreg.core.ipspace import Network, PrefixError, parse_prefix
from vpnreg.core.review import REGISTERED_STATE_VALUES, Role, State, is_registered
from vpnreg.core.verdict_rule import (
    RegistrationTerms,
    implied_rule,
    serial_standing,
)
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.claims import range_keys
from vpnreg.registry.errors import FieldError, ValidationFailed
from vpnreg.registry.models import (
    Application,
    ApplicationPrefix,
    Binding,
    BoundTo,
    FeedDeltaRow,
    FeedStateRow,
    GatewayReport,
    GatewayReportCount,
)
from vpnreg.registry.services.actors import Actor, actor_name, require_role
from vpnreg.registry.services.bindings import widest_start
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.lookup import lookup
from vpnreg.registry.services.transaction import service_transaction

__all__ = ["MAX_HOURS", "ExplainRow", "Explanation", "Holder", "explain"]

#: The longest window an explanation covers (the applicant's page shows 14 days too).
MAX_HOURS = 14 * 24
#: The widest prefix explained: its unregistered counts are looked up per /24 (/48), at most 256.
WIDEST = {4: 16, 6: 40}


@dataclass(frozen=True)
class Holder:
    """A registration that holds (part of) the address or prefix."""

    registration_id: int
    tracking_number: str | None
    state: str
    #: Registered at the asked time (core is_registered, and the binding's time for "binding").
    registered_at_time: bool
    valid_until: dt.date | None
    #: The registration's prefix, or the bound address, that overlaps the question.
    space: str
    #: "prefix" (a prefix-bound registration) or "binding" (an ISP's binding at the time).
    via: str


@dataclass(frozen=True)
class ExplainRow:
    """Flows of one hour at one gateway with one verdict, under one applied feed state."""

    hour: dt.datetime
    gateway_id: str
    protocol: str
    verdict: str
    flows: int
    registration_id: int | None
    tracking_number: str | None
    #: The /24 (/48) of unregistered flows (None for a registration's row).
    prefix: str | None
    rule: str | None
    rule_basis: str
    mode: str
    feed_serial: int | None
    set_hash: str | None
    #: core.verdict_rule.SerialStanding.status, at the group's last report.
    serial_status: str
    serial_note: str


@dataclass(frozen=True)
class Explanation:
    target: str
    at: dt.datetime
    since: dt.datetime
    #: The registry's own answer at `at`, in one sentence.
    registry_answer: str
    holders: tuple[Holder, ...]
    rows: tuple[ExplainRow, ...]

    @property
    def empty_note(self) -> str | None:
        if self.rows:
            return None
        return (
            f"no reports mention this address: no gateway reported flows of {self.target} "
            f"(its registrations or its /24 or /48) between {_iso(self.since)} and {_iso(self.at)}"
        )


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _target(text: str) -> Network:
    try:
        network = parse_prefix(text)
    except PrefixError as exc:
        raise ValidationFailed([FieldError("target", str(exc.code), exc.message, text)]) from None
    if network.prefixlen < WIDEST[network.version]:
        raise ValidationFailed(
            [
                FieldError(
                    "target",
                    "too_wide",
                    f"explain takes a prefix of at most /{WIDEST[4]} (IPv4) or /{WIDEST[6]} "
                    "(IPv6): its /24s (/48s) are looked up one by one",
                    text,
                )
            ]
        )
    return network


def _domestic_prefixes(network: Network) -> list[str]:
    length = PREFIX_LENGTH[network.version]
    if network.prefixlen >= length:
        return [str(network.supernet(new_prefix=length))]
    return [str(n) for n in network.subnets(new_prefix=length)]


def _holders(
    session: Session, network: Network, at: dt.datetime, config: ServiceConfig
) -> dict[int, tuple[Holder, RegistrationTerms]]:
    """Every registration covering (part of) `network`: by a prefix, in any state (a gateway on
    an old feed may still decide by an ended one), or by an ISP's binding at `at`; with the
    terms the implied rule depends on."""
    start, end = range_keys(network)
    held: dict[int, tuple[Application, str, str]] = {}
    #: per registration: whether each of its overlapping prefixes lists peers
    lists_peers: dict[int, set[bool]] = {}
    prefixes = session.scalars(
        select(ApplicationPrefix)
        .join(Application, Application.id == ApplicationPrefix.application_id)
        .where(
            ApplicationPrefix.range_start <= end,
            ApplicationPrefix.range_end >= start,
            Application.tracking_number.is_not(None),
        )
        .order_by(ApplicationPrefix.range_start.desc(), ApplicationPrefix.application_id)
    ).all()
    for row in prefixes:
        lists_peers.setdefault(row.application_id, set()).add(bool(row.peers))
        held.setdefault(row.application_id, (row.application, row.prefix, "prefix"))
    bound = session.execute(
        select(Binding.address, Application)
        .join(
            Application,
            # the registration of the bound subscriber, as bindings.bound_holder joins it
            (Application.isp_id == Binding.isp_id)
            & (Application.subscriber_id == Binding.subscriber_id),
        )
        .where(
            Binding.range_start <= end,
            Binding.range_start >= widest_start(network, config.prefix_policy),
            Binding.range_end >= start,
            Binding.valid_from <= at,
            Binding.valid_until > at,
            Binding.ended_at.is_(None) | (Binding.ended_at > at),
            Application.bound_to == BoundTo.SUBSCRIBER.value,
        )
        .order_by(Binding.range_start, Binding.id)
    ).all()
    for address, app in bound:
        lists_peers.setdefault(app.id, set()).add(False)  # a binding has no peers
        held.setdefault(app.id, (app, address, "binding"))
    return {
        app_id: (
            _holder(app, space, via, at, config),
            RegistrationTerms(
                lists_peers=None if len(lists_peers[app_id]) > 1 else lists_peers[app_id].pop(),
                protocols=frozenset(app.protocols or ()),
            ),
        )
        for app_id, (app, space, via) in held.items()
    }


def _holder(app: Application, space: str, via: str, at: dt.datetime, cfg: ServiceConfig) -> Holder:
    registered = (
        app.state in REGISTERED_STATE_VALUES
        and app.valid_from is not None
        and app.valid_until is not None
        and is_registered(
            state=State(app.state),
            valid_from=app.valid_from,
            valid_until=app.valid_until,
            at=at,
            tz=cfg.tz,
        )
    )
    return Holder(
        registration_id=app.id,
        tracking_number=app.tracking_number,
        state=app.state,
        registered_at_time=registered,
        valid_until=app.valid_until,
        space=space,
        via=via,
    )


def _registry_answer(
    session: Session,
    network: Network,
    holders: list[Holder],
    at: dt.datetime,
    config: ServiceConfig,
) -> str:
    when = _iso(at)
    if network.num_addresses == 1:
        found = lookup(session, address=str(network.network_address), now=at, config=config)
        if not found.registered:
            return f"{found.ip} was not registered at {when}"
        how = (
            f"prefix {found.prefix}"
            if found.binding_until is None
            else f"an ISP binding of {found.prefix} until {_iso(found.binding_until)}"
        )
        return (
            f"{found.ip} was registered at {when} by {found.tracking_number} through {how}; "
            f"the registration is valid until {found.valid_until}"
        )
    held = [h for h in holders if h.registered_at_time]
    if not held:
        return f"no registration held any part of {network} at {when}"
    parts = "; ".join(
        f"{h.space} by {h.tracking_number} (valid until {h.valid_until})" for h in held
    )
    return f"registered parts of {network} at {when}: {parts}"


_GROUP = (
    GatewayReportCount.hour,
    GatewayReport.gateway_id,
    GatewayReportCount.protocol,
    GatewayReportCount.verdict,
    GatewayReportCount.registration_id,
    GatewayReportCount.prefix,
    GatewayReport.mode,
    GatewayReport.feed_session,
    GatewayReport.feed_serial,
    GatewayReport.set_hash,
)


def _registry_serials(session: Session) -> tuple[str | None, list[tuple[int, dt.datetime]]]:
    head = session.get(FeedStateRow, 1)
    if head is None:
        return None, []
    kept = session.execute(
        select(FeedDeltaRow.serial, FeedDeltaRow.created).where(
            FeedDeltaRow.session_id == head.session_id
        )
    ).all()
    serials: dict[int, dt.datetime] = {row.serial: row.created for row in kept}
    serials.setdefault(head.serial, head.created)
    return head.session_id, sorted(serials.items())


def explain(
    session: Session,
    *,
    actor: Actor,
    target: str,
    at: dt.datetime,
    hours: int = 24,
    now: dt.datetime,
    config: ServiceConfig,
) -> Explanation:
    """The gateways' verdicts for `target` (an address or a prefix) in the `hours` whole hours
    up to the one holding `at`, newest first, and the registry's answer at `at`. Audited."""
    require_role(actor, Role.REGULATOR, Role.AUDITOR, Role.ADMIN)
    network = _target(target)
    problems = []
    if at.tzinfo is None:
        problems.append(FieldError("at", "invalid", "at needs a time zone offset", at.isoformat()))
    if not 1 <= hours <= MAX_HOURS:
        problems.append(
            FieldError("hours", "invalid", f"hours must be within 1..{MAX_HOURS}", hours)
        )
    if problems:
        raise ValidationFailed(problems)
    target_text = str(network) if network.num_addresses > 1 else str(network.network_address)
    last = hour_of(at)
    since = last - dt.timedelta(hours=hours - 1)
    with service_transaction(session):
        holders = _holders(session, network, at, config)
        window = (GatewayReportCount.hour >= since, GatewayReportCount.hour <= last)
        # per (hour, gateway, row key, applied feed state): flows summed over its reports, and
        # the last report's time, at which the serial's standing is judged
        grouped = (
            select(*_GROUP, func.sum(GatewayReportCount.flows), func.max(GatewayReport.created))
            .join(GatewayReport, GatewayReport.id == GatewayReportCount.report_id)
            .group_by(*_GROUP)
        )
        found: list[Any] = []
        if holders:
            found += session.execute(
                grouped.where(GatewayReportCount.registration_id.in_(list(holders)), *window)
            ).all()
        found += session.execute(
            grouped.where(GatewayReportCount.prefix.in_(_domestic_prefixes(network)), *window)
        ).all()
        registry_session, serials = _registry_serials(session)
        rows = []
        for (hour, gateway, protocol, verdict, reg_id, prefix, mode, feed_session, serial,
             set_hash, flows, last_report) in found:  # fmt: skip
            holder, terms = (
                holders.get(reg_id, (None, None)) if reg_id is not None else (None, None)
            )
            rule = implied_rule(
                verdict=verdict, protocol=protocol, registration_id=reg_id, terms=terms
            )
            standing = serial_standing(
                applied_session=feed_session,
                applied_serial=serial,
                registry_session=registry_session,
                serials=serials,
                at=last_report,
            )
            rows.append(
                ExplainRow(
                    hour=hour,
                    gateway_id=gateway,
                    protocol=protocol,
                    verdict=verdict,
                    flows=int(flows),
                    registration_id=reg_id,
                    tracking_number=None if holder is None else holder.tracking_number,
                    prefix=prefix,
                    rule=None if rule.rule is None else rule.rule.value,
                    rule_basis=rule.basis,
                    mode=mode,
                    feed_serial=serial,
                    set_hash=set_hash,
                    serial_status=standing.status,
                    serial_note=standing.describe(),
                )
            )
        rows.sort(
            key=lambda r: (
                -r.hour.timestamp(),
                r.gateway_id,
                r.registration_id or 0,
                r.prefix or "",
                r.protocol,
                r.verdict,
                r.feed_serial or 0,
            )
        )
        holder_list = [h for h, _ in holders.values()]
        answer = _registry_answer(session, network, holder_list, at, config)
        append_event(
            session,
            time=now,
            actor=actor_name(actor),
            action="read_explain",
            object_type="address",
            object_id=target_text,
            after={"at": _iso(at), "hours": hours, "rows": len(rows)},
        )
    return Explanation(
        target=target_text,
        at=at,
        since=since,
        registry_answer=answer,
        holders=tuple(holder_list),
        rows=tuple(rows),
    )
