"""Renewal: a new application linked to the registration it continues."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.review import Action, Role, State
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.errors import StateConflict
from vpnreg.registry.models import Application, ApplicationPrefix, PrefixPeer, Review
from vpnreg.registry.services.actors import Person, actor_role, require_role, require_scope
from vpnreg.registry.services.applications import (
    check_version,
    load_application,
    new_tracking_numbers,
)
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.outbox import notify_state_change
from vpnreg.registry.services.snapshots import application_snapshot
from vpnreg.registry.services.transaction import service_transaction
from vpnreg.registry.views import ApplicationView

_RENEWABLE = (State.ACTIVE.value, State.EXPIRING.value)
_OPEN = (State.WITHDRAWN.value, State.UPHELD.value, State.REVOKED.value, State.EXPIRED.value)


def renewal_refusal(session: Session, old: Application | ApplicationView) -> str | None:
    """Why `old` cannot be renewed now (not active or expiring, or a renewal already open), or
    None if it can."""
    if old.state not in _RENEWABLE:
        return f"cannot renew {old.tracking_number}: it is {old.state}"
    open_renewal = session.scalar(
        select(Application.tracking_number).where(
            Application.renews_id == old.id, Application.state.not_in(_OPEN)
        )
    )
    if open_renewal is not None:
        return f"{old.tracking_number} already has renewal {open_renewal}"
    return None


def renew(
    session: Session,
    *,
    application_id: int,
    actor: Person,
    now: dt.datetime,
    config: ServiceConfig,
    expected_version: int | None = None,
) -> Application:
    """Ask to continue an active or expiring registration for another year.

    The renewal copies the prefixes and peers and is created SUBMITTED, not draft: its content
    is what was already approved, so there is nothing for the applicant to edit; the ISP (and
    the sector body) review it again as usual. On approval it is valid from the old
    registration's end, so it never overlaps its predecessor. At most one open renewal each.
    """
    require_role(actor, Role.APPLICANT)
    with service_transaction(session):
        old = load_application(session, application_id)
        check_version(old, expected_version)
        actor_role(actor)
        require_scope(session, actor, old)
        refusal = renewal_refusal(session, old)
        if refusal is not None:
            raise StateConflict(refusal)
        new = Application(
            organisation_id=old.organisation_id,
            isp_id=old.isp_id,
            category=old.category,
            subscriber_id=old.subscriber_id,
            bound_to=old.bound_to,
            protocols=list(old.protocols or ()),
            state=State.SUBMITTED.value,
            version=1,
            renews_id=old.id,
            tracking_number=new_tracking_numbers(session, now=now, config=config)[0],
            created_by=actor.username,
            created_at=now,
            updated_at=now,
            prefixes=[
                ApplicationPrefix(
                    position=p.position,
                    prefix=p.prefix,
                    range_start=p.range_start,
                    range_end=p.range_end,
                    peers=[
                        PrefixPeer(peer=q.peer, range_start=q.range_start, range_end=q.range_end)
                        for q in p.peers
                    ],
                )
                for p in old.prefixes
            ],
        )
        session.add(new)
        session.flush()
        session.add(
            Review(
                application_id=new.id,
                actor=actor.username,
                user_id=actor.id,
                action=Action.SUBMIT.value,
                from_state=State.DRAFT.value,
                to_state=State.SUBMITTED.value,
                reason="renewal of " + (old.tracking_number or str(old.id)),
                created_at=now,
            )
        )
        session.flush()
        append_event(
            session,
            time=now,
            actor=actor.username,
            action="renew",
            object_type="application",
            object_id=new.id,
            after={**application_snapshot(new), "renews": old.tracking_number},
        )
        notify_state_change(
            session,
            new,
            action=Action.SUBMIT.value,
            from_state=State.DRAFT.value,
            to_state=State.SUBMITTED.value,
            actor=actor.username,
            now=now,
            reason="renewal of " + (old.tracking_number or str(old.id)),
        )
    return new
