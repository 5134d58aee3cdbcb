"""What a person may do with an application now: the actions a page offers.

Derived from the very rules the services enforce, never a second copy of them: the state
machine's table with the appeal rule (core.review.allowed_actions), the scope rule
(actors.require_scope), the renewal rule (renewal.renewal_refusal) and the states in which peers
and protocols may be amended (core.review.AMENDABLE_STATES).
tests/registry/test_available_actions.py checks,
for every state and role, that what is offered is accepted by take_step and what is not offered
is refused.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from vpnreg.core.review import (
    AMENDABLE_STATES,
    PENDING_STATES,
    Role,
    State,
    allowed_actions,
    restored_state,
)
from vpnreg.registry.errors import Forbidden
from vpnreg.registry.services.actors import Person, actor_role, require_scope
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.renewal import renewal_refusal
from vpnreg.registry.services.workflow import RENEW, STEPS
from vpnreg.registry.views import ApplicationView

#: Asking for a prefix's peers to change (services.amend_peers).
AMEND_PEERS = "amend_peers"
#: Asking for the VPN protocol list to change (services.amend_protocols); same states as peers.
AMEND_PROTOCOLS = "amend_protocols"
#: Attaching another document (services.documents.store_document).
UPLOAD_DOCUMENT = "upload_document"


def available_actions(
    session: Session,
    app: ApplicationView,
    actor: Person,
    *,
    config: ServiceConfig,
    now: dt.datetime | None = None,
) -> frozenset[str]:
    """Every step name (services.STEPS) `actor` may take on `app` as it stands, plus
    AMEND_PEERS, AMEND_PROTOCOLS and UPLOAD_DOCUMENT for the applicant where those are possible.

    With `now`, a suspended registration whose validity has ended (the sweep has not expired it
    yet) offers no re-attestation, which take_step would refuse at that moment."""
    try:
        role = actor_role(actor)
        require_scope(session, actor, app)
    except Forbidden:
        return frozenset()
    state = State(app.state)
    rejected_from = State(app.rejected_from) if app.rejected_from else None
    offered: set[str] = {
        action.value
        for action in allowed_actions(
            state,
            role,
            needs_endorsement=config.needs_endorsement(app.category),
            rejected_from=rejected_from,
            rejected_by=None if app.rejected_by is None else str(app.rejected_by),
            reviewer=str(actor.id),
            restores=_restores(app, now, config),
        )
        if action.value in STEPS
    }
    if role is Role.APPLICANT:
        if renewal_refusal(session, app) is None:
            offered.add(RENEW)
        if state in AMENDABLE_STATES:
            # peers belong to prefixes: a subscriber-bound registration has none to restrict
            if app.prefixes:
                offered.add(AMEND_PEERS)
            offered.add(AMEND_PROTOCOLS)
        if state in PENDING_STATES:
            offered.add(UPLOAD_DOCUMENT)
    return frozenset(offered)


def _restores(app: ApplicationView, now: dt.datetime | None, config: ServiceConfig) -> State | None:
    if now is None or app.state != State.SUSPENDED:
        return None
    if app.valid_from is None or app.valid_until is None:
        return None
    return restored_state(
        valid_from=app.valid_from, valid_until=app.valid_until, at=now, tz=config.tz
    )


__all__ = ["AMEND_PEERS", "AMEND_PROTOCOLS", "UPLOAD_DOCUMENT", "available_actions"]
