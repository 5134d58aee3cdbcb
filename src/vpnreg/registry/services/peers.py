"""Peer amendments: changing which remote prefixes a registered prefix may talk to.

The applicant asks; the old peers stay in force until a regulator approves the amendment.
The rules of who may ask when (`amendable_application`) and of deciding (`decidable_application`,
`record_decision`) are shared with protocol amendments (services.protocol_amendments).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

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


class _Decidable(Protocol):
    state: str
    decided_by: str | None
    decided_at: dt.datetime | None


def amendable_application(
    session: Session, *, application_id: int, actor: Person, expected_version: int | None
) -> Application:
    """The application `actor` (its applicant, in scope) may ask to amend now, at that version:
    before a decision while in review, and while registered (core.review.AMENDABLE_STATES)."""
    require_role(actor, Role.APPLICANT)
    app = load_application(session, application_id)
    check_version(app, expected_version)
    actor_role(actor)
    require_scope(session, actor, app)
    if State(app.state) not in AMENDABLE_STATES:
        raise StateConflict(f"cannot amend {app.tracking_number}: it is {app.state}")
    return app


def decidable_application(
    session: Session,
    *,
    what: str,
    amendment: _Decidable | None,
    amendment_id: int,
    application_id: int | None,
    expected_version: int | None,
) -> Application:
    """The application a pending amendment belongs to, at that version and not closed."""
    if amendment is None or application_id is None:
        raise NotFound(what, amendment_id)
    if amendment.state != AmendmentState.PENDING:
        raise StateConflict(f"{what} {amendment_id} is already {amendment.state}")
    app = load_application(session, application_id)
    check_version(app, expected_version)
    if app.state in _CLOSED:
        raise StateConflict(f"cannot amend {app.tracking_number}: it is {app.state}")
    return app


def record_decision(
    amendment: _Decidable,
    app: Application,
    *,
    state: AmendmentState,
    actor: Person,
    now: dt.datetime,
) -> None:
    """Mark the amendment decided and bump the application's version."""
    amendment.state = state.value
    amendment.decided_by = actor.username
    amendment.decided_at = now
    touch(app, now)


def touch(app: Application, now: dt.datetime) -> None:
    """An amendment asked for or decided changes the application: a new version."""
    app.version = app.version + 1
    app.updated_at = now


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
        app = amendable_application(
            session, application_id=application_id, actor=actor, expected_version=expected_version
        )
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
        touch(app, now)
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
        prefix_app_id = (
            None
            if amendment is None
            else session.scalar(
                select(Application.id)
                .join(Application.prefixes)
                .where(Application.prefixes.any(id=amendment.prefix_id))
            )
        )
        app = decidable_application(
            session,
            what="peer amendment",
            amendment=amendment,
            amendment_id=amendment_id,
            application_id=prefix_app_id,
            expected_version=expected_version,
        )
        assert amendment is not None  # decidable_application refused a missing one
        row = next(p for p in app.prefixes if p.id == amendment.prefix_id)
        before = {"prefix": row.prefix, "peers": [p.peer for p in row.peers]}
        row.peers = [build_peer(parse_prefix(text)) for text in amendment.peers]
        record_decision(amendment, app, state=AmendmentState.APPROVED, actor=actor, now=now)
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
