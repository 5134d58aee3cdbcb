"""Protocol amendments: changing which VPN protocols an application allows (issue 17).

"Changing the list is an amendment": the applicant asks for a new list, the old one stays in
force (and in the feed) until a regulator approves it; a refusal keeps the old list. Who may ask
when, and the deciding, are peer amendments' own rules (services.peers), not a second copy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.bindings import BindingError, parse_protocols
from vpnreg.core.review import Role
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.errors import FieldError, ValidationFailed
from vpnreg.registry.models import AmendmentState, ProtocolAmendment
from vpnreg.registry.services.actors import Person, require_role
from vpnreg.registry.services.peers import (
    amendable_application,
    decidable_application,
    record_decision,
    touch,
)
from vpnreg.registry.services.transaction import service_transaction
from vpnreg.registry.views import ApplicationView, ProtocolAmendmentView

_WHAT = "protocol amendment"


def amend_protocols(
    session: Session,
    *,
    application_id: int,
    protocols: Sequence[str],
    actor: Person,
    now: dt.datetime,
    expected_version: int | None = None,
) -> ProtocolAmendmentView:
    """Ask for the application to allow `protocols` instead (empty: any VPN protocol).

    Replaces any protocol amendment still pending for it. Bumps the application's version.
    """
    require_role(actor, Role.APPLICANT)
    with service_transaction(session):
        app = amendable_application(
            session, application_id=application_id, actor=actor, expected_version=expected_version
        )
        try:
            wanted = [p.value for p in parse_protocols(list(protocols))]
        except BindingError as exc:
            raise ValidationFailed(
                [FieldError("protocols", "invalid", exc.message, list(protocols))]
            ) from None
        for old in session.scalars(
            select(ProtocolAmendment).where(
                ProtocolAmendment.application_id == app.id,
                ProtocolAmendment.state == AmendmentState.PENDING,
            )
        ):
            session.delete(old)
        amendment = ProtocolAmendment(
            application_id=app.id,
            protocols=wanted,
            state=AmendmentState.PENDING.value,
            requested_by=actor.username,
            requested_at=now,
        )
        session.add(amendment)
        touch(app, now)
        session.flush()
        append_event(
            session,
            time=now,
            actor=actor.username,
            action="amend_protocols",
            object_type="application",
            object_id=app.id,
            before={"protocols": list(app.protocols or ())},
            after={"pending_protocols": wanted, "amendment": amendment.id},
        )
    return ProtocolAmendmentView.of(amendment)


def decide_protocol_amendment(
    session: Session,
    *,
    amendment_id: int,
    approve: bool,
    actor: Person,
    now: dt.datetime,
    expected_version: int | None = None,
) -> ApplicationView:
    """A regulator puts the pending protocols in force (`approve`) or keeps the old ones;
    `expected_version` is the application's."""
    require_role(actor, Role.REGULATOR)
    with service_transaction(session):
        amendment = session.get(ProtocolAmendment, amendment_id)
        app = decidable_application(
            session,
            what=_WHAT,
            amendment=amendment,
            amendment_id=amendment_id,
            application_id=None if amendment is None else amendment.application_id,
            expected_version=expected_version,
        )
        assert amendment is not None  # decidable_application refused a missing one
        before = {"protocols": list(app.protocols or ())}
        if approve:
            app.protocols = list(amendment.protocols)
        state = AmendmentState.APPROVED if approve else AmendmentState.REFUSED
        record_decision(amendment, app, state=state, actor=actor, now=now)
        session.flush()
        append_event(
            session,
            time=now,
            actor=actor.username,
            action="approve_protocol_amendment" if approve else "refuse_protocol_amendment",
            object_type="application",
            object_id=app.id,
            before=before,
            after={
                "protocols": list(app.protocols or ()),
                "requested": list(amendment.protocols),
                "amendment": amendment.id,
            },
        )
    return ApplicationView.of(app)


def pending_protocol_amendment(
    session: Session, *, application_id: int
) -> ProtocolAmendmentView | None:
    """The application's pending protocol amendment, if any (at most one is pending)."""
    row = session.scalar(
        select(ProtocolAmendment).where(
            ProtocolAmendment.application_id == application_id,
            ProtocolAmendment.state == AmendmentState.PENDING,
        )
    )
    return None if row is None else ProtocolAmendmentView.of(row)


__all__ = ["amend_protocols", "decide_protocol_amendment", "pending_protocol_amendment"]
