"""Cheap signs that the registered set may have moved, read before anything expensive is done.

The registered set at a moment depends on the stored registrations and on the time. Every
stored change is written with an audit event in its own transaction, so the audit chain's head
sequence moves with it (`audit_head_seq`: one row); a report of ISP bindings is one such change.
Time alone changes the set only where a SYSTEM step (activate, expire) is due, which `time_due`
answers from a few aggregated columns, or where an ISP's binding reaches its end without a stop
(`bindings_timed`, which also notices a binding that began after the last publish's time).
A registration in force may also begin after a publish's time: an approval stamped by a clock
a little ahead of the publisher's, or committed between the publisher's reading of its clock
and of the database, is left out of that publish as not yet valid although its audit event is
behind the publish's mark. The publisher notes its start after each publish
(`next_registration_start`) and publishes again when its clock reaches it; the incremental step
then takes it (`registration_began_in`).
While none has moved since the last publish, computing the registered set again can only find
the set already published.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from vpnreg.core.review import REGISTERED_STATE_VALUES, State, time_transition
from vpnreg.registry.models import Application, AuditHead, Binding
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.timeline import _TIMED_STATES

__all__ = [
    "audit_head_seq",
    "binding_began_in",
    "binding_ended_in",
    "bindings_timed",
    "next_registration_start",
    "registration_began_in",
    "time_due",
]


def audit_head_seq(session: Session) -> int | None:
    """The sequence number of the newest audit event (None while the log is empty)."""
    return session.execute(select(AuditHead.seq).where(AuditHead.id == 1)).scalar_one_or_none()


def time_due(session: Session, now: dt.datetime, config: ServiceConfig) -> bool:
    """Whether advance_time would move any registration at `now` (no lock taken).

    Within one state a step falls due at an instant that only grows with valid_from (activation)
    or valid_until (expiring notice, expiry), so the earliest of each decides for the whole state:
    one aggregated row per timed state instead of every timed registration.
    """
    rows = session.execute(
        select(
            Application.state, func.min(Application.valid_from), func.min(Application.valid_until)
        )
        .where(
            Application.state.in_(_TIMED_STATES),
            Application.valid_from.is_not(None),
            Application.valid_until.is_not(None),
        )
        .group_by(Application.state)
    ).all()
    return any(
        valid_from is not None
        and valid_until is not None
        and time_transition(
            state=State(state), valid_from=valid_from, valid_until=valid_until, at=now, tz=config.tz
        )
        is not None
        for state, valid_from, valid_until in rows
    )


def binding_ended_in(since: dt.datetime, now: dt.datetime) -> ColumnElement[bool]:
    """A binding reached its end without a stop in (since, now]."""
    return and_(Binding.valid_until > since, Binding.valid_until <= now, Binding.ended_at.is_(None))


def binding_began_in(since: dt.datetime, now: dt.datetime) -> ColumnElement[bool]:
    """A binding began in (since, now]."""
    return and_(Binding.valid_from > since, Binding.valid_from <= now)


def bindings_timed(session: Session, since: dt.datetime, now: dt.datetime) -> bool:
    """Whether a binding began, or reached its end without a stop, in (since, now] (no lock
    taken; one indexed row at most per side).

    Gateways enforce an entry's end themselves; this lets the published set drop it. A binding
    that began after the publisher's clock read its last `now` (a report's own clock ran ahead)
    was left out of that publish and is taken now."""
    return any(
        session.execute(select(Binding.id).where(window).limit(1)).first() is not None
        for window in (binding_ended_in(since, now), binding_began_in(since, now))
    )


def registration_began_in(since: dt.datetime, now: dt.datetime) -> ColumnElement[bool]:
    """A registration in a registered state whose validity began in (since, now]."""
    return and_(
        Application.state.in_(REGISTERED_STATE_VALUES),
        Application.valid_from > since,
        Application.valid_from <= now,
    )


def next_registration_start(session: Session, after: dt.datetime) -> dt.datetime | None:
    """The earliest start later than `after` of a registration already in force (None: none).

    Read right after a publish at `after`: a registration found here was left out of it as not
    yet valid (see the module's docstring), and the publisher publishes again once its clock
    reaches that start."""
    return session.execute(
        select(func.min(Application.valid_from)).where(
            Application.state.in_(REGISTERED_STATE_VALUES), Application.valid_from > after
        )
    ).scalar_one_or_none()
