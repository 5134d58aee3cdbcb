"""Peer amendments: changing which remote prefixes a registered prefix may talk to.

The applicant asks; the old peers stay in force until a regulator approves the amendment.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.ipspace import PrefixError, parse_prefix
from vpnreg.core.review import AMENDABLE_STATES, TERMINAL_STATES, Role, State
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.errors import FieldError, NotFound, StateConflict, ValidationFailed
from vpnreg.registry.models import AmendmentState, Application, PeerAmendment
from vpnreg.registry.services.actors import Person, actor_role, require_role, require_scope
from vpnreg.registry.services.applications import (
    build_peer,
    check_version,
    load_application,
    validate_peers,
)
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.transaction import service_transaction
from vpnreg.registry.views import AmendmentView, ApplicationView

_CLOSED = tuple(s.value for s in TERMINAL_STATES)


def amend_peers(
    session: Session,
    *,
    application_id: int,
    prefix: str,
    peers: Sequence[str],
    actor: Person,
    now: dt.datetime,
    config: ServiceConfig,
    expected_version: int | None = None,
) -> AmendmentView:
    """Ask for `prefix` of the application to be limited to `peers` instead (empty: any peer).

    Replaces any amendment still pending for that prefix. Bumps the application's version.
    """
    require_role(actor, Role.APPLICANT)
    with service_transaction(session):
        app = load_application(session, application_id)
        check_version(app, expected_version)
        actor_role(actor)
        require_scope(session, actor, app)
        if State(app.state) not in AMENDABLE_STATES:
            raise StateConflict(f"cannot amend {app.tracking_number}: it is {app.state}")
        try:
            wanted = str(parse_prefix(prefix))
        except PrefixError as exc:
            raise ValidationFailed(
                [FieldError("prefix", str(exc.code), exc.message, prefix)]
            ) from None
        row = next((p for p in app.prefixes if p.prefix == wanted), None)
        if row is None:
            raise ValidationFailed(
                [FieldError("prefix", "not_in_application", f"{wanted} is not in it", prefix)]
            )
        networks, errors = validate_peers(peers, config.prefix_policy, "peers")
        if errors:
            raise ValidationFailed(errors)
        for old in session.scalars(
            select(PeerAmendment).where(
                PeerAmendment.prefix_id == row.id, PeerAmendment.state == AmendmentState.PENDING
            )
        ):
            session.delete(old)
        amendment = PeerAmendment(
            prefix_id=row.id,
            peers=sorted({str(n) for n in networks}),
            state=AmendmentState.PENDING.value,
            requested_by=actor.username,
            requested_at=now,
        )
        session.add(amendment)
        app.version = app.version + 1
        app.updated_at = now
        session.flush()
        append_event(
            session,
            time=now,
            actor=actor.username,
            action="amend_peers",
            object_type="application",
            object_id=app.id,
            before={"prefix": wanted, "peers": [p.peer for p in row.peers]},
            after={"prefix": wanted, "pending_peers": amendment.peers, "amendment": amendment.id},
        )
    return AmendmentView.of(amendment)


def approve_amendment(
    session: Session,
    *,
    amendment_id: int,
    actor: Person,
    now: dt.datetime,
    config: ServiceConfig,
    expected_version: int | None = None,
) -> ApplicationView:
    """A regulator puts the pending peers in force; `expected_version` is the application's."""
    require_role(actor, Role.REGULATOR)
    with service_transaction(session):
        amendment = session.get(PeerAmendment, amendment_id)
        if amendment is None:
            raise NotFound("peer amendment", amendment_id)
        if amendment.state != AmendmentState.PENDING:
            raise StateConflict(f"peer amendment {amendment_id} is already {amendment.state}")
        prefix_app_id = session.scalar(
            select(Application.id)
            .join(Application.prefixes)
            .where(Application.prefixes.any(id=amendment.prefix_id))
        )
        if prefix_app_id is None:
            raise NotFound("peer amendment", amendment_id)
        app = load_application(session, prefix_app_id)
        check_version(app, expected_version)
        if app.state in _CLOSED:
            raise StateConflict(f"cannot amend {app.tracking_number}: it is {app.state}")
        row = next(p for p in app.prefixes if p.id == amendment.prefix_id)
        before = {"prefix": row.prefix, "peers": [p.peer for p in row.peers]}
        row.peers = [build_peer(parse_prefix(text)) for text in amendment.peers]
        amendment.state = AmendmentState.APPROVED.value
        amendment.decided_by = actor.username
        amendment.decided_at = now
        app.version = app.version + 1
        app.updated_at = now
        session.flush()
        append_event(
            session,
            time=now,
            actor=actor.username,
            action="approve_amendment",
            object_type="application",
            object_id=app.id,
            before=before,
            after={"prefix": row.prefix, "peers": list(amendment.peers), "amendment": amendment.id},
        )
    return ApplicationView.of(app)
