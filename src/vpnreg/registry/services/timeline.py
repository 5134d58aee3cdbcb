"""What the passage of time does: activation, the expiring notice and expiry (advance_time).

A suspended registration (its ISP withdrew the attestation) still expires at its end, and gives
up its claims then like any other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.review import Action, Role, State, check_transition, time_transition
from vpnreg.registry.audit_log import DeferredEvents
from vpnreg.registry.claims import release_space
from vpnreg.registry.models import Application
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.snapshots import application_snapshot
from vpnreg.registry.services.transaction import service_transaction
from vpnreg.registry.services.workflow import record_step

_TIMED_STATES = (
    State.APPROVED.value,
    State.ACTIVE.value,
    State.EXPIRING.value,
    State.SUSPENDED.value,
)


@dataclass(frozen=True)
class TimeChange:
    """One state change made by the clock."""

    application_id: int
    tracking_number: str
    action: Action
    from_state: State
    to_state: State


def advance_time(session: Session, *, now: dt.datetime, config: ServiceConfig) -> list[TimeChange]:
    """Apply every time-driven step due at `now` until nothing changes; audited as "system".

    An application may move several steps at once (approved -> active -> expired when the
    sweep has not run for long). Expired registrations give up their claims.
    """
    changes: list[TimeChange] = []
    with service_transaction(session):
        # every step's event written at the end: the audit head's lock held only then
        events = DeferredEvents(session)
        apps = session.scalars(
            select(Application)
            .where(Application.state.in_(_TIMED_STATES))
            .order_by(Application.id)
            .with_for_update(of=Application)
        ).all()
        for app in apps:
            while True:
                state = State(app.state)
                if app.valid_from is None or app.valid_until is None:
                    break
                action = time_transition(
                    state=state,
                    valid_from=app.valid_from,
                    valid_until=app.valid_until,
                    at=now,
                    tz=config.tz,
                )
                if action is None:
                    break
                target = check_transition(
                    state,
                    action,
                    Role.SYSTEM,
                    needs_endorsement=config.needs_endorsement(app.category),
                )
                before = application_snapshot(app)
                if target is State.EXPIRED:
                    release_space(session, app.id)
                record_step(
                    session,
                    app,
                    actor="system",
                    action=action,
                    target=target,
                    now=now,
                    before=before,
                    events=events,
                )
                changes.append(TimeChange(app.id, app.tracking_number or "", action, state, target))
        events.write()
    return changes
