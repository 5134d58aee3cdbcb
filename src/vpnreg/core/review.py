"""The application state machine: states, actions, who may act, and what time alone does.

One pure table (TRANSITIONS) says which action moves which state where and which roles may take it.
Everything else here reads that table; nothing here reads a clock, so callers pass `at` and the
time zone in which a registration's last day ends.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    ISP_VERIFIED = "isp_verified"
    SECTOR_ENDORSED = "sector_endorsed"
    APPROVED = "approved"
    ACTIVE = "active"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    REJECTED = "rejected"
    APPEALED = "appealed"
    UPHELD = "upheld"
    REVOKED = "revoked"
    WITHDRAWN = "withdrawn"
    #: The ISP has withdrawn its attestation (line cancelled, address reassigned): off the
    #: allowlist, address space still held, until the ISP attests again, the regulator revokes
    #: it or its validity ends.
    SUSPENDED = "suspended"


class Action(StrEnum):
    SUBMIT = "submit"
    VERIFY = "verify"
    ENDORSE = "endorse"
    APPROVE = "approve"
    ACTIVATE = "activate"
    MARK_EXPIRING = "mark_expiring"
    EXPIRE = "expire"
    REJECT = "reject"
    APPEAL = "appeal"
    UPHOLD = "uphold"
    OVERTURN = "overturn"
    REVOKE = "revoke"
    WITHDRAW = "withdraw"
    WITHDRAW_ATTESTATION = "withdraw_attestation"
    REATTEST = "reattest"


class Role(StrEnum):
    APPLICANT = "applicant"
    ISP = "isp"
    SECTOR_BODY = "sector_body"
    REGULATOR = "regulator"
    AUDITOR = "auditor"
    ADMIN = "admin"
    GATEWAY = "gateway"
    SYSTEM = "system"


#: States in which the prefixes are on the allowlist (if the dates also say so: is_registered).
REGISTERED_STATES: frozenset[State] = frozenset({State.ACTIVE, State.EXPIRING})
#: The same as the stored column's values (for queries: `Application.state.in_(...)`).
REGISTERED_STATE_VALUES: tuple[str, ...] = tuple(sorted(s.value for s in REGISTERED_STATES))
#: Before a final decision: the applicant may still withdraw.
PENDING_STATES: frozenset[State] = frozenset(
    {
        State.DRAFT,
        State.SUBMITTED,
        State.ISP_VERIFIED,
        State.SECTOR_ENDORSED,
        State.REJECTED,
        State.APPEALED,
    }
)
#: The regulator has decided for good (a rejection is not final until upheld). A suspension is
#: the ISP's, not a new decision: the regulator's approval stands behind a suspended registration.
DECIDED_STATES: frozenset[State] = frozenset(
    {
        State.APPROVED,
        State.ACTIVE,
        State.EXPIRING,
        State.SUSPENDED,
        State.EXPIRED,
        State.UPHELD,
        State.REVOKED,
    }
)
#: States that stand on the ISP's attestation, which the ISP may withdraw (-> SUSPENDED); a
#: re-attestation restores one of them, whichever the dates give (restored_state).
ATTESTED_STATES: frozenset[State] = frozenset({State.APPROVED, State.ACTIVE, State.EXPIRING})
#: No action leads out of these.
TERMINAL_STATES: frozenset[State] = frozenset(
    {State.EXPIRED, State.UPHELD, State.REVOKED, State.WITHDRAWN}
)
#: States in which an applicant may ask for a prefix's peers to change: before a decision while
#: still in review, and while registered. Not once rejected (the appeal is about the application
#: as rejected) nor in a terminal state.
AMENDABLE_STATES: frozenset[State] = frozenset(
    {
        State.DRAFT,
        State.SUBMITTED,
        State.ISP_VERIFIED,
        State.SECTOR_ENDORSED,
        State.APPROVED,
        State.ACTIVE,
        State.EXPIRING,
    }
)
#: States from which a rejection can be made, hence valid values of `rejected_from`.
REJECTABLE_STATES: frozenset[State] = frozenset(
    {State.SUBMITTED, State.ISP_VERIFIED, State.SECTOR_ENDORSED}
)

PROVISIONAL_DAYS = 90
RENEWAL_DAYS = 365
EXPIRING_NOTICE_DAYS = 30


@dataclass(frozen=True)
class Transition:
    """One row of the table.

    `needs_endorsement` None means the row holds whatever the category; True or False restricts
    it. `rejected_from` is set only on OVERTURN rows: the state in which the application was
    rejected, which decides where an overturned application resumes. `restores` is set only on
    REATTEST rows: the state the registration's dates give at the moment of re-attestation
    (restored_state), which is where it resumes.
    """

    state: State
    action: Action
    target: State
    roles: frozenset[Role]
    needs_endorsement: bool | None = None
    rejected_from: State | None = None
    restores: State | None = None


_APPLICANT = frozenset({Role.APPLICANT})
_ISP = frozenset({Role.ISP})
_SECTOR = frozenset({Role.SECTOR_BODY})
_REGULATOR = frozenset({Role.REGULATOR})
_SYSTEM = frozenset({Role.SYSTEM})

TRANSITIONS: tuple[Transition, ...] = (
    Transition(State.DRAFT, Action.SUBMIT, State.SUBMITTED, _APPLICANT),
    Transition(State.DRAFT, Action.WITHDRAW, State.WITHDRAWN, _APPLICANT),
    Transition(State.SUBMITTED, Action.VERIFY, State.ISP_VERIFIED, _ISP),
    # The ISP refuses to attest; the regulator may also stop an application at this step.
    Transition(State.SUBMITTED, Action.REJECT, State.REJECTED, _ISP | _REGULATOR),
    Transition(State.SUBMITTED, Action.WITHDRAW, State.WITHDRAWN, _APPLICANT),
    Transition(State.ISP_VERIFIED, Action.ENDORSE, State.SECTOR_ENDORSED, _SECTOR, True),
    Transition(State.ISP_VERIFIED, Action.REJECT, State.REJECTED, _SECTOR | _REGULATOR, True),
    Transition(State.ISP_VERIFIED, Action.APPROVE, State.APPROVED, _REGULATOR, False),
    Transition(State.ISP_VERIFIED, Action.REJECT, State.REJECTED, _REGULATOR, False),
    Transition(State.ISP_VERIFIED, Action.WITHDRAW, State.WITHDRAWN, _APPLICANT),
    Transition(State.SECTOR_ENDORSED, Action.APPROVE, State.APPROVED, _REGULATOR),
    Transition(State.SECTOR_ENDORSED, Action.REJECT, State.REJECTED, _REGULATOR),
    Transition(State.SECTOR_ENDORSED, Action.WITHDRAW, State.WITHDRAWN, _APPLICANT),
    Transition(State.APPROVED, Action.ACTIVATE, State.ACTIVE, _SYSTEM),
    Transition(State.APPROVED, Action.REVOKE, State.REVOKED, _REGULATOR),
    Transition(State.ACTIVE, Action.MARK_EXPIRING, State.EXPIRING, _SYSTEM),
    Transition(State.ACTIVE, Action.EXPIRE, State.EXPIRED, _SYSTEM),
    Transition(State.ACTIVE, Action.REVOKE, State.REVOKED, _REGULATOR),
    Transition(State.EXPIRING, Action.EXPIRE, State.EXPIRED, _SYSTEM),
    Transition(State.EXPIRING, Action.REVOKE, State.REVOKED, _REGULATOR),
    # The ISP that attested withdraws its attestation (line cancelled, address reassigned).
    Transition(State.APPROVED, Action.WITHDRAW_ATTESTATION, State.SUSPENDED, _ISP),
    Transition(State.ACTIVE, Action.WITHDRAW_ATTESTATION, State.SUSPENDED, _ISP),
    Transition(State.EXPIRING, Action.WITHDRAW_ATTESTATION, State.SUSPENDED, _ISP),
    # Its re-attestation restores the registration without a new review, in whichever state
    # its dates give now; the regulator may end it; time still ends it at its end.
    Transition(State.SUSPENDED, Action.REATTEST, State.APPROVED, _ISP, restores=State.APPROVED),
    Transition(State.SUSPENDED, Action.REATTEST, State.ACTIVE, _ISP, restores=State.ACTIVE),
    Transition(State.SUSPENDED, Action.REATTEST, State.EXPIRING, _ISP, restores=State.EXPIRING),
    Transition(State.SUSPENDED, Action.REVOKE, State.REVOKED, _REGULATOR),
    Transition(State.SUSPENDED, Action.EXPIRE, State.EXPIRED, _SYSTEM),
    Transition(State.REJECTED, Action.APPEAL, State.APPEALED, _APPLICANT),
    Transition(State.REJECTED, Action.WITHDRAW, State.WITHDRAWN, _APPLICANT),
    Transition(State.APPEALED, Action.UPHOLD, State.UPHELD, _REGULATOR),
    # An overturned rejection resumes where the positive action at the rejecting step leads.
    Transition(
        State.APPEALED,
        Action.OVERTURN,
        State.ISP_VERIFIED,
        _REGULATOR,
        rejected_from=State.SUBMITTED,
    ),
    Transition(
        State.APPEALED,
        Action.OVERTURN,
        State.SECTOR_ENDORSED,
        _REGULATOR,
        True,
        rejected_from=State.ISP_VERIFIED,
    ),
    Transition(
        State.APPEALED,
        Action.OVERTURN,
        State.APPROVED,
        _REGULATOR,
        False,
        rejected_from=State.ISP_VERIFIED,
    ),
    Transition(
        State.APPEALED,
        Action.OVERTURN,
        State.APPROVED,
        _REGULATOR,
        rejected_from=State.SECTOR_ENDORSED,
    ),
    Transition(State.APPEALED, Action.WITHDRAW, State.WITHDRAWN, _APPLICANT),
)


#: What a person's action needs besides the application and its version: each argument's name
#: and whether it must be given (non-blank). Actions not listed take no arguments.
ACTION_ARGUMENTS: dict[Action, dict[str, bool]] = {
    Action.REJECT: {"reason_code": True, "reason": True},
    Action.REVOKE: {"reason": True, "reason_code": False},
    Action.APPEAL: {"text": True},
    Action.UPHOLD: {"reason": True},
    Action.OVERTURN: {"reason": True},
    Action.WITHDRAW_ATTESTATION: {"reason": True},
}
#: What a missing argument is called in a message to a person.
ARGUMENT_LABELS: dict[str, str] = {
    "reason_code": "a reason code",
    "reason": "a reason",
    "text": "the grounds of the appeal",
}


def action_named(name: str) -> Action | None:
    """The Action called `name`, or None (no TypeError for strings, unlike `in Action` on 3.11)."""
    try:
        return Action(name)
    except ValueError:
        return None


def argument_problems(action: Action, given: dict[str, str | None]) -> list[tuple[str, str]]:
    """(argument, problem) for every argument `action` needs but lacks or does not take."""
    spec = ACTION_ARGUMENTS.get(action, {})
    problems = [
        (name, f"{action} needs {ARGUMENT_LABELS.get(name, name)}")
        for name, required in spec.items()
        if required and not (given.get(name) or "").strip()
    ]
    problems += [
        (name, f"{action} takes no {name}")
        for name, value in given.items()
        if name not in spec and value is not None
    ]
    return problems


class TransitionError(Exception):
    """The action is not possible from the application's state."""

    def __init__(self, state: State, action: Action, message: str | None = None) -> None:
        self.state = state
        self.action = action
        self.message = message or f"cannot {action} an application that is {state}"
        super().__init__(self.message)


class PermissionDenied(Exception):
    """The role may not take this action (here, or at all)."""

    def __init__(
        self,
        role: Role,
        action: Action,
        *,
        state: State | None = None,
        message: str | None = None,
    ) -> None:
        self.role = role
        self.action = action
        self.state = state
        if message is None:
            where = f" an application that is {state}" if state is not None else ""
            message = f"the {role} role may not {action}{where}"
        self.message = message
        super().__init__(message)


def _rows(state: State, action: Action, needs_endorsement: bool) -> list[Transition]:
    return [
        t
        for t in TRANSITIONS
        if t.state is state
        and t.action is action
        and (t.needs_endorsement is None or t.needs_endorsement is needs_endorsement)
    ]


def _row(
    state: State,
    action: Action,
    *,
    needs_endorsement: bool,
    rejected_from: State | None,
    restores: State | None = None,
) -> Transition:
    rows = _rows(state, action, needs_endorsement)
    if not rows:
        if any(t.state is state and t.action is action for t in TRANSITIONS):
            awaits = "awaits sector endorsement" if needs_endorsement else "needs no endorsement"
            raise TransitionError(
                state, action, f"cannot {action} an application that is {state} and {awaits}"
            )
        raise TransitionError(state, action)
    if action is Action.REATTEST:
        return _restoring_row(state, action, rows, restores)
    if action is not Action.OVERTURN:
        # Rows for one (state, action) differ only in their endorsement condition.
        return rows[0]
    if rejected_from is None:
        raise TransitionError(
            state, action, "cannot overturn a rejection without knowing the step that made it"
        )
    for t in rows:
        if t.rejected_from is rejected_from:
            return t
    raise TransitionError(
        state,
        action,
        f"cannot overturn a rejection made while the application was {rejected_from}",
    )


def _restoring_row(
    state: State, action: Action, rows: list[Transition], restores: State | None
) -> Transition:
    if restores is None:
        raise TransitionError(
            state, action, "cannot reattest without knowing the state the dates give"
        )
    for t in rows:
        if t.restores is restores:
            return t
    if restores is State.EXPIRED:
        message = "cannot reattest a registration whose validity has ended"
    else:
        message = f"cannot reattest a registration into {restores}"
    raise TransitionError(state, action, message)


def next_state(
    state: State,
    action: Action,
    *,
    needs_endorsement: bool,
    rejected_from: State | None = None,
    restores: State | None = None,
) -> State:
    """Where `action` takes an application in `state`; TransitionError if it cannot.

    `rejected_from` is needed only for OVERTURN: the state the application was in when rejected;
    `restores` only for REATTEST: the state its dates give now (restored_state).
    """
    return _row(
        state,
        action,
        needs_endorsement=needs_endorsement,
        rejected_from=rejected_from,
        restores=restores,
    ).target


def check_transition(
    state: State,
    action: Action,
    role: Role,
    *,
    needs_endorsement: bool,
    rejected_from: State | None = None,
    restores: State | None = None,
) -> State:
    """next_state, and also check that `role` may take the action here.

    The state is checked first: an impossible action is a TransitionError whoever asks, so a
    caller can tell "not now" from "not you".
    """
    row = _row(
        state,
        action,
        needs_endorsement=needs_endorsement,
        rejected_from=rejected_from,
        restores=restores,
    )
    if role not in row.roles:
        raise PermissionDenied(role, action, state=state)
    return row.target


def check_appeal_reviewer(action: Action, *, rejected_by: str, reviewer: str) -> None:
    """An appeal is decided, either way, only by someone other than the one who rejected."""
    if rejected_by == reviewer:
        raise PermissionDenied(
            Role.REGULATOR,
            action,
            state=State.APPEALED,
            message=f"the reviewer who rejected an application may not {action} the appeal "
            "against that rejection; another reviewer decides it",
        )


def allowed_actions(
    state: State,
    role: Role,
    *,
    needs_endorsement: bool,
    rejected_from: State | None = None,
    rejected_by: str | None = None,
    reviewer: str | None = None,
    restores: State | None = None,
) -> list[Action]:
    """The actions `role` may take on an application in `state`, in Action order.

    With `rejected_from` (and `rejected_by`, `reviewer`) it also applies what check_transition
    and check_appeal_reviewer apply to an appeal's decision, so the answer is exactly what the
    server will accept: no overturn without a row for the rejecting step, no decision of an
    appeal by the reviewer who rejected. With `restores` (restored_state now) likewise no
    re-attestation of a registration whose validity has ended.
    """
    allowed: list[Action] = []
    for action in Action:
        rows = [t for t in _rows(state, action, needs_endorsement) if role in t.roles]
        if action is Action.OVERTURN and rejected_from is not None:
            rows = [t for t in rows if t.rejected_from is rejected_from]
        if action is Action.REATTEST and restores is not None:
            rows = [t for t in rows if t.restores is restores]
        if not rows:
            continue
        if action in (Action.UPHOLD, Action.OVERTURN) and rejected_by is not None:
            try:
                check_appeal_reviewer(action, rejected_by=rejected_by, reviewer=reviewer or "")
            except PermissionDenied:
                continue
        allowed.append(action)
    return allowed


def overturn_target(rejected_from: State, *, needs_endorsement: bool) -> State:
    """Where an overturned rejection resumes: what the positive action at that step gives."""
    return next_state(
        State.APPEALED,
        Action.OVERTURN,
        needs_endorsement=needs_endorsement,
        rejected_from=rejected_from,
    )


def _require_aware(name: str, value: dt.datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got naive {value.isoformat()}")


def validity_end(valid_until: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """The first instant after the day `valid_until` ends in `tz`, as aware UTC (exclusive end).

    That is local midnight starting the next day. Where midnight falls in a DST gap, zoneinfo
    reads it with the offset before the gap, which is exactly the instant the new day begins.
    """
    next_day = valid_until + dt.timedelta(days=1)
    return dt.datetime.combine(next_day, dt.time(0), tzinfo=tz).astimezone(dt.UTC)


def expiring_from(valid_until: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """The instant the last EXPIRING_NOTICE_DAYS local days of a registration begin (UTC)."""
    return validity_end(valid_until - dt.timedelta(days=EXPIRING_NOTICE_DAYS), tz)


def is_registered(
    *,
    state: State,
    valid_from: dt.datetime,
    valid_until: dt.date,
    at: dt.datetime,
    tz: dt.tzinfo,
) -> bool:
    """THE definition of "registered at `at`": a registered state and inside the validity dates.

    Both are required, so a row whose state lags the clock (a sweep has not run yet) never
    widens the allowlist.
    """
    _require_aware("at", at)
    _require_aware("valid_from", valid_from)
    return state in REGISTERED_STATES and valid_from <= at < validity_end(valid_until, tz)


def time_transition(
    *,
    state: State,
    valid_from: dt.datetime,
    valid_until: dt.date,
    at: dt.datetime,
    tz: dt.tzinfo,
) -> Action | None:
    """The SYSTEM action that the passage of time alone calls for at `at`, or None.

    Only one step is returned; approved -> active -> expiring -> expired can chain, so a caller
    applies it and asks again until None.
    """
    _require_aware("at", at)
    _require_aware("valid_from", valid_from)
    if state is State.APPROVED:
        return Action.ACTIVATE if valid_from <= at else None
    # A suspended registration still ends at its end; it is neither activated nor marked
    # expiring while suspended (a re-attestation puts it where the dates say: restored_state).
    ends = state in REGISTERED_STATES or state is State.SUSPENDED
    if ends and at >= validity_end(valid_until, tz):
        return Action.EXPIRE
    if state is State.ACTIVE and at >= expiring_from(valid_until, tz):
        return Action.MARK_EXPIRING
    return None


def restored_state(
    *, valid_from: dt.datetime, valid_until: dt.date, at: dt.datetime, tz: dt.tzinfo
) -> State:
    """The state a registration with these dates is in at `at` had nothing suspended it:
    approved (not yet valid), active, expiring, or expired (then nothing can restore it).

    It is where time alone takes an approval (time_transition applied until None), so a
    re-attested registration is exactly where it would be without the suspension.
    """
    state = State.APPROVED
    while (
        action := time_transition(
            state=state, valid_from=valid_from, valid_until=valid_until, at=at, tz=tz
        )
    ) is not None:
        state = next_state(state, action, needs_endorsement=False)
    return state


def provisional_until(start: dt.datetime, tz: dt.tzinfo) -> dt.date:
    """The last valid day of a provisional registration starting at `start`.

    As for periods counted in days in law, the partly elapsed first day is not counted: the
    registration holds for the rest of the start day (in `tz`) and PROVISIONAL_DAYS full days.
    """
    _require_aware("start", start)
    return start.astimezone(tz).date() + dt.timedelta(days=PROVISIONAL_DAYS)


def renewal_period(old_valid_until: dt.date, tz: dt.tzinfo) -> tuple[dt.datetime, dt.date]:
    """(valid_from, valid_until) of a renewal: from the old one's end for RENEWAL_DAYS days."""
    return (
        validity_end(old_valid_until, tz),
        old_valid_until + dt.timedelta(days=RENEWAL_DAYS),
    )
