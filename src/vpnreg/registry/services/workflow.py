"""The one entry for every step a person takes on an application: `take_step`.

A step names its action (submit, verify, endorse, approve, reject, revoke, withdraw, appeal,
uphold, overturn, withdraw_attestation, reattest, or renew), the application, who acts, the
version they acted on, and the action's arguments, which the core table ACTION_ARGUMENTS
checks (a reason, a reason code, the grounds of an appeal). The API, the portal and the CLI
call it and nothing else.

Each step loads the application under a row lock, refuses a stale expected_version, asks the
core state machine whether the actor's role may take the action, checks that the application is
the actor's business, applies the action's own effect (claims, dates, appeal rows), bumps the
version, writes a review row and one audit event, and commits -- all in one transaction, run
again as a whole if the database stayed locked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from vpnreg.core.review import (
    ACTION_ARGUMENTS,
    RENEWAL_DAYS,
    Action,
    State,
    action_named,
    argument_problems,
    check_appeal_reviewer,
    check_transition,
    provisional_until,
    renewal_period,
    restored_state,
)
from vpnreg.registry.audit_log import DeferredEvents
from vpnreg.registry.claims import claim_space, release_space
from vpnreg.registry.errors import FieldError, NotFound, StateConflict, ValidationFailed
from vpnreg.registry.models import Appeal, AppealOutcome, Application, Review
from vpnreg.registry.services.actors import Actor, Person, actor_name, actor_role, require_scope
from vpnreg.registry.services.applications import check_version, load_application
from vpnreg.registry.services.config import ServiceConfig
from vpnreg.registry.services.outbox import notify_state_change
from vpnreg.registry.services.renewal import renew
from vpnreg.registry.services.snapshots import application_snapshot
from vpnreg.registry.services.submission import (
    refuse_registered_overlap,
    refuse_second_subscriber_registration,
)
from vpnreg.registry.services.transaction import run_unit, service_transaction
from vpnreg.registry.views import ApplicationView

#: A step's own change, applied after the state has moved (claims, dates, appeal rows).
Effect = Callable[[Session, Application, State], None]

#: The step that is no move of the state machine: a new application continuing this one.
RENEW = "renew"
#: Every step a person may take on an application, by name.
STEPS: tuple[str, ...] = (
    Action.SUBMIT,
    Action.VERIFY,
    Action.ENDORSE,
    Action.APPROVE,
    Action.REJECT,
    Action.REVOKE,
    Action.WITHDRAW,
    Action.APPEAL,
    Action.UPHOLD,
    Action.OVERTURN,
    Action.WITHDRAW_ATTESTATION,
    Action.REATTEST,
    RENEW,
)


@dataclass(frozen=True)
class StepRequest:
    """One step as a caller asks for it.

    `expected_version` None acts on whatever is current (the CLI without --expect-version);
    `arguments` holds the action's arguments by name (ACTION_ARGUMENTS), nothing else.
    """

    action: str
    application_id: int
    actor: Person
    expected_version: int | None = None
    arguments: Mapping[str, str | None] = field(default_factory=dict)


def arguments_for(action: str, values: Mapping[str, object]) -> dict[str, str | None]:
    """The arguments `action` takes, picked by name from `values` (a form, a request body)."""
    named = action_named(action)
    spec = ACTION_ARGUMENTS.get(named, {}) if named is not None else {}
    picked: dict[str, str | None] = {}
    for name in spec:
        value = values.get(name)
        picked[name] = None if value is None else str(value)
    return picked


def take_step(
    session: Session, step: StepRequest, *, now: dt.datetime, config: ServiceConfig
) -> ApplicationView:
    """Take `step`; returns the application it leaves (for renew: the new renewal application).

    Unknown steps are NotFound; missing or unexpected arguments ValidationFailed, all at once.
    """
    if step.action not in STEPS:
        raise NotFound("step", step.action)
    if step.action == RENEW:
        _check_arguments(Action.SUBMIT, step.arguments)  # like submit, it takes none
        renewal = run_unit(
            session,
            lambda: renew(
                session,
                application_id=step.application_id,
                actor=step.actor,
                now=now,
                config=config,
                expected_version=step.expected_version,
            ),
        )
        return ApplicationView.of(renewal)
    action = Action(step.action)
    arguments = _check_arguments(action, step.arguments)
    app = run_unit(session, lambda: _move(session, step, action, arguments, now, config))
    return ApplicationView.of(app)


def _check_arguments(action: Action, given: Mapping[str, str | None]) -> dict[str, str]:
    problems = argument_problems(action, dict(given))
    if problems:
        raise ValidationFailed(
            [
                FieldError(
                    name,
                    "required" if name in ACTION_ARGUMENTS.get(action, {}) else "unexpected",
                    message,
                    given.get(name),
                )
                for name, message in problems
            ]
        )
    return {name: value.strip() for name, value in given.items() if value is not None}


def _move(
    session: Session,
    step: StepRequest,
    action: Action,
    arguments: dict[str, str],
    now: dt.datetime,
    config: ServiceConfig,
) -> Application:
    effect = _EFFECTS[action](step.actor, arguments, now, config) if action in _EFFECTS else None
    reason_code = arguments.get("reason_code")
    if action is Action.REVOKE:
        reason_code = reason_code or "revoked"
    return _step(
        session,
        application_id=step.application_id,
        expected_version=step.expected_version,
        actor=step.actor,
        action=action,
        now=now,
        config=config,
        effect=effect,
        reason_code=reason_code,
        reason=arguments.get("reason", arguments.get("text")),
    )


def record_step(
    session: Session,
    app: Application,
    *,
    actor: Actor,
    action: Action,
    target: State,
    now: dt.datetime,
    before: dict[str, object],
    reason_code: str | None = None,
    reason: str | None = None,
    events: DeferredEvents | None = None,
) -> None:
    """Move `app` to `target`, bump its version, and write the review row and audit event (the
    event kept in `events` when given, for the caller to write just before it commits)."""
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
    kept = events if events is not None else DeferredEvents(session)
    kept.append(
        time=now,
        actor=actor_name(actor),
        action=action.value,
        object_type="application",
        object_id=app.id,
        before=before,
        after=after,
    )
    if events is None:
        kept.write()
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
    actor: Person,
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
            restores=_restores(app, now, config) if action is Action.REATTEST else None,
        )
        require_scope(session, actor, app)
        before = application_snapshot(app)
        if effect is not None:
            effect(session, app, target)
        # the audit head's lock only for the last moment (DeferredEvents)
        events = DeferredEvents(session)
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
            events=events,
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
                events=events,
            )
        events.write()
    return app


def _restores(app: Application, now: dt.datetime, config: ServiceConfig) -> State | None:
    """Where a re-attestation of `app` resumes: the state its dates give at `now`."""
    if app.valid_from is None or app.valid_until is None:
        return None
    return restored_state(
        valid_from=app.valid_from, valid_until=app.valid_until, at=now, tz=config.tz
    )


def _approval_effect(config: ServiceConfig, now: dt.datetime) -> Effect:
    def effect(session: Session, app: Application, target: State) -> None:
        if target is not State.APPROVED:
            return
        refuse_second_subscriber_registration(session, app, viewer=None)
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


def _decide_appeal(
    session: Session,
    app: Application,
    actor: Person,
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


def _submit_effect(
    actor: Person, arguments: dict[str, str], now: dt.datetime, config: ServiceConfig
) -> Effect:
    def effect(session: Session, app: Application, target: State) -> None:
        refuse_registered_overlap(session, app, viewer=actor, now=now)
        refuse_second_subscriber_registration(session, app, viewer=actor)

    return effect


def _release_effect(
    actor: Person, arguments: dict[str, str], now: dt.datetime, config: ServiceConfig
) -> Effect:
    def effect(session: Session, app: Application, target: State) -> None:
        release_space(session, app.id)

    return effect


def _reject_effect(
    actor: Person, arguments: dict[str, str], now: dt.datetime, config: ServiceConfig
) -> Effect:
    def effect(session: Session, app: Application, target: State) -> None:
        app.rejected_from = app.state
        app.rejected_by = actor.id

    return effect


def _appeal_effect(
    actor: Person, arguments: dict[str, str], now: dt.datetime, config: ServiceConfig
) -> Effect:
    def effect(session: Session, app: Application, target: State) -> None:
        session.add(
            Appeal(
                application_id=app.id,
                text=arguments["text"],
                filed_by=actor.username,
                filed_at=now,
            )
        )

    return effect


def _uphold_effect(
    actor: Person, arguments: dict[str, str], now: dt.datetime, config: ServiceConfig
) -> Effect:
    def effect(session: Session, app: Application, target: State) -> None:
        check_appeal_reviewer(
            Action.UPHOLD, rejected_by=str(app.rejected_by), reviewer=str(actor.id)
        )
        _decide_appeal(session, app, actor, AppealOutcome.UPHELD, arguments["reason"], now)

    return effect


def _overturn_effect(
    actor: Person, arguments: dict[str, str], now: dt.datetime, config: ServiceConfig
) -> Effect:
    approval = _approval_effect(config, now)

    def effect(session: Session, app: Application, target: State) -> None:
        check_appeal_reviewer(
            Action.OVERTURN, rejected_by=str(app.rejected_by), reviewer=str(actor.id)
        )
        _decide_appeal(session, app, actor, AppealOutcome.OVERTURNED, arguments["reason"], now)
        approval(session, app, target)

    return effect


def _approve_effect(
    actor: Person, arguments: dict[str, str], now: dt.datetime, config: ServiceConfig
) -> Effect:
    return _approval_effect(config, now)


#: Each action's own change beyond the state move (the others have none). WITHDRAW_ATTESTATION
#: and REATTEST have none on purpose: a suspended registration keeps its claims (claims.py).
_EFFECTS: dict[Action, Callable[[Person, dict[str, str], dt.datetime, ServiceConfig], Effect]] = {
    Action.SUBMIT: _submit_effect,
    Action.APPROVE: _approve_effect,
    Action.REJECT: _reject_effect,
    Action.REVOKE: _release_effect,
    Action.WITHDRAW: _release_effect,
    Action.APPEAL: _appeal_effect,
    Action.UPHOLD: _uphold_effect,
    Action.OVERTURN: _overturn_effect,
}

__all__ = [
    "RENEW",
    "STEPS",
    "StepRequest",
    "approval_period",
    "arguments_for",
    "record_step",
    "take_step",
]
