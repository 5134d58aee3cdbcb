"""The review steps: submit, verify, endorse, approve, reject, revoke, withdraw, appeals.

Each step loads the application under a row lock, refuses a stale expected_version, asks the
core state machine whether the actor's role may take the action, checks that the application is
the actor's business, applies the change, bumps the version, writes a review row and one audit
event, and commits -- all in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.review import (
    RENEWAL_DAYS,
    Action,
    Role,
    State,
    check_overturn_reviewer,
    check_transition,
    provisional_until,
    renewal_period,
)
from vpnreg.registry.audit_log import append_event
from vpnreg.registry.claims import claim_space, release_space
from vpnreg.registry.errors import FieldError, StateConflict, ValidationFailed
from vpnreg.registry.models import Appeal, AppealOutcome, Application, Review, User
from vpnreg.registry.services.actors import actor_name, actor_role, require_scope
from vpnreg.registry.services.applications import check_version, load_application
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.outbox import notify_state_change
from vpnreg.registry.services.snapshots import application_snapshot
from vpnreg.registry.services.transaction import service_transaction

#: A step's own change, applied after the state has moved (claims, dates, appeal rows).
Effect = Callable[[Session, Application, State], None]


def record_step(
    session: Session,
    app: Application,
    *,
    actor: User | str,
    action: Action,
    target: State,
    now: dt.datetime,
    before: dict[str, object],
    reason_code: str | None = None,
    reason: str | None = None,
) -> None:
    """Move `app` to `target`, bump its version, and write the review row and audit event."""
    from_state = app.state
    app.state = target.value
    app.version = app.version + 1
    app.updated_at = now
    session.add(
        Review(
            application_id=app.id,
            actor=actor_name(actor),
            user_id=None if isinstance(actor, str) else actor.id,
            action=action.value,
            from_state=from_state,
            to_state=target.value,
            reason_code=reason_code,
            reason=reason,
            created_at=now,
        )
    )
    session.flush()
    after = application_snapshot(app)
    if reason_code is not None or reason is not None:
        after = {**after, "reason_code": reason_code, "reason": reason}
    append_event(
        session,
        time=now,
        actor=actor_name(actor),
        action=action.value,
        object_type="application",
        object_id=app.id,
        before=before,
        after=after,
    )
    # Every state change queues its notice in the same transaction (the outbox).
    notify_state_change(
        session,
        app,
        action=action.value,
        from_state=from_state,
        to_state=target.value,
        actor=actor_name(actor),
        now=now,
        reason=reason,
    )


def _step(
    session: Session,
    *,
    application_id: int,
    expected_version: int | None,
    actor: User,
    action: Action,
    now: dt.datetime,
    config: ServiceConfig,
    effect: Effect | None = None,
    reason_code: str | None = None,
    reason: str | None = None,
) -> Application:
    with service_transaction(session):
        app = load_application(session, application_id)
        check_version(app, expected_version)
        role = actor_role(actor)
        rejected_from = State(app.rejected_from) if app.rejected_from else None
        target = check_transition(
            State(app.state),
            action,
            role,
            needs_endorsement=config.needs_endorsement(app.category),
            rejected_from=rejected_from if action is Action.OVERTURN else None,
        )
        require_scope(session, actor, app)
        before = application_snapshot(app)
        if effect is not None:
            effect(session, app, target)
        record_step(
            session,
            app,
            actor=actor,
            action=action,
            target=target,
            now=now,
            before=before,
            reason_code=reason_code,
            reason=reason,
        )
        if target is State.APPROVED and app.valid_from is not None and app.valid_from <= now:
            # Approval that takes effect at once: activated in the same transaction, as the
            # system, so the allowlist never sees an approved-but-inactive gap.
            before = application_snapshot(app)
            record_step(
                session,
                app,
                actor="system",
                action=Action.ACTIVATE,
                target=State.ACTIVE,
                now=now,
                before=before,
            )
    return app


def _approval_effect(config: ServiceConfig, now: dt.datetime) -> Effect:
    def effect(session: Session, app: Application, target: State) -> None:
        if target is not State.APPROVED:
            return
        app.valid_from, app.valid_until = approval_period(session, app, now, config.tz)
        session.flush()
        claim_space(session, app, tz=config.tz)

    return effect


def approval_period(
    session: Session, app: Application, now: dt.datetime, tz: dt.tzinfo
) -> tuple[dt.datetime, dt.date]:
    """Provisional (90 days from now) for a first application; one year from the end of the
    old registration for a renewal (or from now, if that end has already passed)."""
    if app.renews_id is not None:
        old = session.get(Application, app.renews_id)
        if old is not None and old.valid_until is not None:
            start, until = renewal_period(old.valid_until, tz)
            if start >= now:
                return start, until
        return now, now.astimezone(tz).date() + dt.timedelta(days=RENEWAL_DAYS)
    return now, provisional_until(now, tz)


def submit(
    session: Session,
    *,
    application_id: int,
    actor: User,
    now: dt.datetime,
    config: ServiceConfig,
    expected_version: int | None = None,
) -> Application:
    """The applicant sends the draft for review (to the ISP first)."""
    return _step(
        session,
        application_id=application_id,
        expected_version=expected_version,
        actor=actor,
        action=Action.SUBMIT,
        now=now,
        config=config,
    )


def verify(
    session: Session,
    *,
    application_id: int,
    actor: User,
    now: dt.datetime,
    config: ServiceConfig,
    expected_version: int | None = None,
) -> Application:
    """A user of the application's ISP attests that the prefixes are the subscriber's."""
    return _step(
        session,
        application_id=application_id,
        expected_version=expected_version,
        actor=actor,
        action=Action.VERIFY,
        now=now,
        config=config,
    )


def endorse(
    session: Session,
    *,
    application_id: int,
    actor: User,
    now: dt.datetime,
    config: ServiceConfig,
    expected_version: int | None = None,
) -> Application:
    """A user of a sector body covering the category endorses (endorsed categories only)."""
    return _step(
        session,
        application_id=application_id,
        expected_version=expected_version,
        actor=actor,
        action=Action.ENDORSE,
        now=now,
        config=config,
    )


def approve(
    session: Session,
    *,
    application_id: int,
    actor: User,
    now: dt.datetime,
    config: ServiceConfig,
    expected_version: int | None = None,
) -> Application:
    """The regulator approves: validity dates are set, the address space is claimed
    (OverlapConflict names a registration already holding it), and if the validity has begun
    the registration is activated at once."""
    return _step(
        session,
        application_id=application_id,
        expected_version=expected_version,
        actor=actor,
        action=Action.APPROVE,
        now=now,
        config=config,
        effect=_approval_effect(config, now),
    )


def reject(
    session: Session,
    *,
    application_id: int,
    actor: User,
    reason_code: str,
    reason: str,
    now: dt.datetime,
    config: ServiceConfig,
    expected_version: int | None = None,
) -> Application:
    """The ISP, the sector body or the regulator refuses, at their step, with a reason."""
    _require_reason(reason_code, reason)

    def effect(session: Session, app: Application, target: State) -> None:
        app.rejected_from = app.state
        app.rejected_by = actor.id

    return _step(
        session,
        application_id=application_id,
        expected_version=expected_version,
        actor=actor,
        action=Action.REJECT,
        now=now,
        config=config,
        effect=effect,
        reason_code=reason_code,
        reason=reason,
    )


def revoke(
    session: Session,
    *,
    application_id: int,
    actor: User,
    reason: str,
    now: dt.datetime,
    config: ServiceConfig,
    reason_code: str = "revoked",
    expected_version: int | None = None,
) -> Application:
    """The regulator ends a registration early; its address space is freed at once."""
    _require_reason(reason_code, reason)

    def effect(session: Session, app: Application, target: State) -> None:
        release_space(session, app.id)

    return _step(
        session,
        application_id=application_id,
        expected_version=expected_version,
        actor=actor,
        action=Action.REVOKE,
        now=now,
        config=config,
        effect=effect,
        reason_code=reason_code,
        reason=reason,
    )


def withdraw(
    session: Session,
    *,
    application_id: int,
    actor: User,
    now: dt.datetime,
    config: ServiceConfig,
    expected_version: int | None = None,
) -> Application:
    """The applicant takes back an application that has not been decided."""

    def effect(session: Session, app: Application, target: State) -> None:
        release_space(session, app.id)

    return _step(
        session,
        application_id=application_id,
        expected_version=expected_version,
        actor=actor,
        action=Action.WITHDRAW,
        now=now,
        config=config,
        effect=effect,
    )


def appeal(
    session: Session,
    *,
    application_id: int,
    actor: User,
    text: str,
    now: dt.datetime,
    config: ServiceConfig,
    expected_version: int | None = None,
) -> Application:
    """The applicant appeals a rejection; a regulator then upholds or overturns it."""
    if not text.strip():
        raise ValidationFailed([FieldError("text", "required", "the appeal needs a text", text)])

    def effect(session: Session, app: Application, target: State) -> None:
        session.add(Appeal(application_id=app.id, text=text, filed_by=actor.username, filed_at=now))

    return _step(
        session,
        application_id=application_id,
        expected_version=expected_version,
        actor=actor,
        action=Action.APPEAL,
        now=now,
        config=config,
        effect=effect,
        reason=text,
    )


def _decide_appeal(
    session: Session,
    app: Application,
    actor: User,
    outcome: AppealOutcome,
    reason: str | None,
    now: dt.datetime,
) -> None:
    pending = session.scalar(
        select(Appeal)
        .where(Appeal.application_id == app.id, Appeal.outcome.is_(None))
        .order_by(Appeal.id.desc())
    )
    if pending is None:
        raise StateConflict(f"{app.tracking_number} has no pending appeal")
    pending.outcome = outcome.value
    pending.decided_by = actor.username
    pending.decided_at = now
    pending.reason = reason


def uphold(
    session: Session,
    *,
    application_id: int,
    actor: User,
    reason: str,
    now: dt.datetime,
    config: ServiceConfig,
    expected_version: int | None = None,
) -> Application:
    """A regulator confirms the rejection; the application ends there."""

    def effect(session: Session, app: Application, target: State) -> None:
        _decide_appeal(session, app, actor, AppealOutcome.UPHELD, reason, now)

    return _step(
        session,
        application_id=application_id,
        expected_version=expected_version,
        actor=actor,
        action=Action.UPHOLD,
        now=now,
        config=config,
        effect=effect,
        reason=reason,
    )


def overturn(
    session: Session,
    *,
    application_id: int,
    actor: User,
    reason: str,
    now: dt.datetime,
    config: ServiceConfig,
    expected_version: int | None = None,
) -> Application:
    """A regulator other than the one who rejected sets the rejection aside; the application
    resumes at the step after the rejecting one (and is approved, with claims, if that step was
    the regulator's)."""
    approval = _approval_effect(config, now)

    def effect(session: Session, app: Application, target: State) -> None:
        check_overturn_reviewer(rejected_by=str(app.rejected_by), reviewer=str(actor.id))
        _decide_appeal(session, app, actor, AppealOutcome.OVERTURNED, reason, now)
        approval(session, app, target)

    return _step(
        session,
        application_id=application_id,
        expected_version=expected_version,
        actor=actor,
        action=Action.OVERTURN,
        now=now,
        config=config,
        effect=effect,
        reason=reason,
    )


def _require_reason(reason_code: str, reason: str) -> None:
    errors = []
    if not reason_code.strip():
        errors.append(FieldError("reason_code", "required", "a reason code is needed", reason_code))
    if not reason.strip():
        errors.append(FieldError("reason", "required", "a reason is needed", reason))
    if errors:
        raise ValidationFailed(errors)


__all__ = [
    "Role",
    "appeal",
    "approve",
    "endorse",
    "overturn",
    "reject",
    "revoke",
    "submit",
    "uphold",
    "verify",
    "withdraw",
]
