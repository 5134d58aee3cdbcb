"""The application state machine: every (state, action) pair, every role, and the dates."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from vpnreg.core.review import (
    ATTESTED_STATES,
    DECIDED_STATES,
    PENDING_STATES,
    REGISTERED_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    Action,
    PermissionDenied,
    Role,
    State,
    TransitionError,
    allowed_actions,
    check_appeal_reviewer,
    check_transition,
    expiring_from,
    is_registered,
    next_state,
    overturn_target,
    provisional_until,
    renewal_period,
    restored_state,
    time_transition,
    validity_end,
)

S, A, R = State, Action, Role
KARACHI = ZoneInfo("Asia/Karachi")
LONDON = ZoneInfo("Europe/London")
UTC = dt.UTC

APPLICANT = frozenset({R.APPLICANT})
ISP = frozenset({R.ISP})
SECTOR = frozenset({R.SECTOR_BODY})
REGULATOR = frozenset({R.REGULATOR})
SYSTEM = frozenset({R.SYSTEM})
BOTH = None  # the row holds whether or not the category needs sector endorsement

# Written out by hand from the brief, deliberately not derived from TRANSITIONS:
# (state, action, needs_endorsement or BOTH, target, roles). Anything absent is forbidden.
# OVERTURN is listed with rejected_from=SUBMITTED here; OVERTURN_EXPECTED covers the rest.
# REATTEST is listed with restores=ACTIVE here; REATTEST_EXPECTED covers the rest.
EXPECTED: list[tuple[State, Action, bool | None, State, frozenset[Role]]] = [
    (S.DRAFT, A.SUBMIT, BOTH, S.SUBMITTED, APPLICANT),
    (S.DRAFT, A.WITHDRAW, BOTH, S.WITHDRAWN, APPLICANT),
    (S.SUBMITTED, A.VERIFY, BOTH, S.ISP_VERIFIED, ISP),
    (S.SUBMITTED, A.REJECT, BOTH, S.REJECTED, ISP | REGULATOR),
    (S.SUBMITTED, A.WITHDRAW, BOTH, S.WITHDRAWN, APPLICANT),
    (S.ISP_VERIFIED, A.ENDORSE, True, S.SECTOR_ENDORSED, SECTOR),
    (S.ISP_VERIFIED, A.REJECT, True, S.REJECTED, SECTOR | REGULATOR),
    (S.ISP_VERIFIED, A.APPROVE, False, S.APPROVED, REGULATOR),
    (S.ISP_VERIFIED, A.REJECT, False, S.REJECTED, REGULATOR),
    (S.ISP_VERIFIED, A.WITHDRAW, BOTH, S.WITHDRAWN, APPLICANT),
    (S.SECTOR_ENDORSED, A.APPROVE, BOTH, S.APPROVED, REGULATOR),
    (S.SECTOR_ENDORSED, A.REJECT, BOTH, S.REJECTED, REGULATOR),
    (S.SECTOR_ENDORSED, A.WITHDRAW, BOTH, S.WITHDRAWN, APPLICANT),
    (S.APPROVED, A.ACTIVATE, BOTH, S.ACTIVE, SYSTEM),
    (S.APPROVED, A.REVOKE, BOTH, S.REVOKED, REGULATOR),
    (S.ACTIVE, A.MARK_EXPIRING, BOTH, S.EXPIRING, SYSTEM),
    (S.ACTIVE, A.EXPIRE, BOTH, S.EXPIRED, SYSTEM),
    (S.ACTIVE, A.REVOKE, BOTH, S.REVOKED, REGULATOR),
    (S.EXPIRING, A.EXPIRE, BOTH, S.EXPIRED, SYSTEM),
    (S.EXPIRING, A.REVOKE, BOTH, S.REVOKED, REGULATOR),
    (S.APPROVED, A.WITHDRAW_ATTESTATION, BOTH, S.SUSPENDED, ISP),
    (S.ACTIVE, A.WITHDRAW_ATTESTATION, BOTH, S.SUSPENDED, ISP),
    (S.EXPIRING, A.WITHDRAW_ATTESTATION, BOTH, S.SUSPENDED, ISP),
    (S.SUSPENDED, A.REATTEST, BOTH, S.ACTIVE, ISP),
    (S.SUSPENDED, A.REVOKE, BOTH, S.REVOKED, REGULATOR),
    (S.SUSPENDED, A.EXPIRE, BOTH, S.EXPIRED, SYSTEM),
    (S.REJECTED, A.APPEAL, BOTH, S.APPEALED, APPLICANT),
    (S.REJECTED, A.WITHDRAW, BOTH, S.WITHDRAWN, APPLICANT),
    (S.APPEALED, A.UPHOLD, BOTH, S.UPHELD, REGULATOR),
    (S.APPEALED, A.OVERTURN, BOTH, S.ISP_VERIFIED, REGULATOR),
    (S.APPEALED, A.WITHDRAW, BOTH, S.WITHDRAWN, APPLICANT),
]

# (rejected_from, needs_endorsement) -> where an overturned rejection resumes; absent = error.
OVERTURN_EXPECTED: dict[tuple[State, bool], State] = {
    (S.SUBMITTED, False): S.ISP_VERIFIED,
    (S.SUBMITTED, True): S.ISP_VERIFIED,
    (S.ISP_VERIFIED, False): S.APPROVED,
    (S.ISP_VERIFIED, True): S.SECTOR_ENDORSED,
    (S.SECTOR_ENDORSED, False): S.APPROVED,
    (S.SECTOR_ENDORSED, True): S.APPROVED,
}

# The state a suspended registration's dates give -> where re-attestation takes it; absent =
# error (nothing restores an ended registration).
REATTEST_EXPECTED: dict[State, State] = {
    S.APPROVED: S.APPROVED,
    S.ACTIVE: S.ACTIVE,
    S.EXPIRING: S.EXPIRING,
}


def expected(
    state: State, action: Action, needs_endorsement: bool
) -> tuple[State, frozenset[Role]] | None:
    for s, a, ne, target, roles in EXPECTED:
        if s is state and a is action and (ne is None or ne is needs_endorsement):
            return target, roles
    return None


ALL_PAIRS = [
    pytest.param(s, a, ne, id=f"{s}-{a}-{'endorsed' if ne else 'plain'}")
    for s, a, ne in itertools.product(State, Action, (False, True))
]


# --- the state table -----------------------------------------------------------------------


@pytest.mark.parametrize(("state", "action", "needs_endorsement"), ALL_PAIRS)
def test_every_state_action_pair(state: State, action: Action, needs_endorsement: bool) -> None:
    want = expected(state, action, needs_endorsement)
    if want is None:
        with pytest.raises(TransitionError) as caught:
            next_state(
                state,
                action,
                needs_endorsement=needs_endorsement,
                rejected_from=S.SUBMITTED,
                restores=S.ACTIVE,
            )
        assert caught.value.state is state
        assert caught.value.action is action
        assert caught.value.message.startswith(f"cannot {action} an application that is {state}")
        assert "\n" not in caught.value.message
    else:
        got = next_state(
            state,
            action,
            needs_endorsement=needs_endorsement,
            rejected_from=S.SUBMITTED,
            restores=S.ACTIVE,
        )
        assert got is want[0]


@pytest.mark.parametrize(("state", "action", "needs_endorsement"), ALL_PAIRS)
def test_every_role_on_every_pair(state: State, action: Action, needs_endorsement: bool) -> None:
    want = expected(state, action, needs_endorsement)
    for role in Role:

        def attempt(role: Role = role) -> State:
            return check_transition(
                state,
                action,
                role,
                needs_endorsement=needs_endorsement,
                rejected_from=S.SUBMITTED,
                restores=S.ACTIVE,
            )

        if want is None:
            with pytest.raises(TransitionError):
                attempt()
        elif role in want[1]:
            assert attempt() is want[0]
        else:
            with pytest.raises(PermissionDenied) as caught:
                attempt()
            assert caught.value.role is role
            assert caught.value.action is action


@pytest.mark.parametrize(
    ("state", "role", "needs_endorsement"),
    [
        pytest.param(s, r, ne, id=f"{s}-{r}-{'endorsed' if ne else 'plain'}")
        for s, r, ne in itertools.product(State, Role, (False, True))
    ],
)
def test_allowed_actions_agree_with_the_expected_table(
    state: State, role: Role, needs_endorsement: bool
) -> None:
    want = []
    for action in Action:
        row = expected(state, action, needs_endorsement)
        if row is not None and role in row[1]:
            want.append(action)
    assert allowed_actions(state, role, needs_endorsement=needs_endorsement) == want


@pytest.mark.parametrize("role", [R.ADMIN, R.AUDITOR, R.GATEWAY], ids=str)
def test_admin_auditor_and_gateway_may_do_nothing(role: Role) -> None:
    for state, ne in itertools.product(State, (False, True)):
        assert allowed_actions(state, role, needs_endorsement=ne) == []


@pytest.mark.parametrize(
    ("rejected_from", "needs_endorsement"),
    [
        pytest.param(s, ne, id=f"{s}-{'endorsed' if ne else 'plain'}")
        for s, ne in itertools.product(State, (False, True))
    ],
)
def test_overturn_resumes_after_the_rejecting_step(
    rejected_from: State, needs_endorsement: bool
) -> None:
    want = OVERTURN_EXPECTED.get((rejected_from, needs_endorsement))
    if want is None:
        with pytest.raises(TransitionError, match=f"while the application was {rejected_from}"):
            overturn_target(rejected_from, needs_endorsement=needs_endorsement)
        with pytest.raises(TransitionError):
            check_transition(
                S.APPEALED,
                A.OVERTURN,
                R.REGULATOR,
                needs_endorsement=needs_endorsement,
                rejected_from=rejected_from,
            )
    else:
        assert overturn_target(rejected_from, needs_endorsement=needs_endorsement) is want
        got = check_transition(
            S.APPEALED,
            A.OVERTURN,
            R.REGULATOR,
            needs_endorsement=needs_endorsement,
            rejected_from=rejected_from,
        )
        assert got is want


@pytest.mark.parametrize("restores", list(State), ids=str)
def test_reattest_resumes_where_the_dates_say(restores: State) -> None:
    want = REATTEST_EXPECTED.get(restores)
    for ne in (False, True):
        if want is None:
            with pytest.raises(TransitionError, match="cannot reattest"):
                check_transition(
                    S.SUSPENDED, A.REATTEST, R.ISP, needs_endorsement=ne, restores=restores
                )
        else:
            got = check_transition(
                S.SUSPENDED, A.REATTEST, R.ISP, needs_endorsement=ne, restores=restores
            )
            assert got is want
        offered = allowed_actions(S.SUSPENDED, R.ISP, needs_endorsement=ne, restores=restores)
        assert offered == ([] if want is None else [A.REATTEST])


def test_withdrawal_and_reattestation_span_exactly_the_attested_states() -> None:
    withdrawn_from = {t.state for t in TRANSITIONS if t.action is A.WITHDRAW_ATTESTATION}
    restored_to = {t.target for t in TRANSITIONS if t.action is A.REATTEST}
    assert withdrawn_from == restored_to == ATTESTED_STATES
    assert not ATTESTED_STATES & {S.SUSPENDED} and S.SUSPENDED not in REGISTERED_STATES


def test_reattest_of_an_ended_registration_says_so() -> None:
    with pytest.raises(TransitionError, match="whose validity has ended"):
        next_state(S.SUSPENDED, A.REATTEST, needs_endorsement=False, restores=S.EXPIRED)
    with pytest.raises(TransitionError, match="without knowing the state the dates give"):
        next_state(S.SUSPENDED, A.REATTEST, needs_endorsement=False)


def test_overturn_without_rejected_from_is_refused() -> None:
    with pytest.raises(TransitionError, match="without knowing the step"):
        next_state(S.APPEALED, A.OVERTURN, needs_endorsement=False)


def test_overturn_target_equals_the_positive_action_at_the_rejecting_step() -> None:
    # The rule stated as a relation between two parts of the table.
    positive = {S.SUBMITTED: A.VERIFY, S.SECTOR_ENDORSED: A.APPROVE}
    for ne in (False, True):
        for rejected_from, action in positive.items():
            assert overturn_target(rejected_from, needs_endorsement=ne) is next_state(
                rejected_from, action, needs_endorsement=ne
            )
        step = A.ENDORSE if ne else A.APPROVE
        assert overturn_target(S.ISP_VERIFIED, needs_endorsement=ne) is next_state(
            S.ISP_VERIFIED, step, needs_endorsement=ne
        )


@pytest.mark.parametrize("action", [A.OVERTURN, A.UPHOLD])
def test_an_appeal_is_decided_by_another_than_the_rejecting_reviewer(action: A) -> None:
    with pytest.raises(PermissionDenied, match=f"may not {action}"):
        check_appeal_reviewer(action, rejected_by="reviewer-7", reviewer="reviewer-7")
    check_appeal_reviewer(action, rejected_by="reviewer-7", reviewer="reviewer-9")


@pytest.mark.parametrize(
    ("state", "action", "needs_endorsement", "message"),
    [
        pytest.param(
            S.DRAFT, A.APPROVE, False, "cannot approve an application that is draft", id="plain"
        ),
        pytest.param(
            S.ISP_VERIFIED,
            A.APPROVE,
            True,
            "cannot approve an application that is isp_verified and awaits sector endorsement",
            id="approve-before-endorsement",
        ),
        pytest.param(
            S.ISP_VERIFIED,
            A.ENDORSE,
            False,
            "cannot endorse an application that is isp_verified and needs no endorsement",
            id="endorse-unneeded",
        ),
    ],
)
def test_transition_error_messages(
    state: State, action: Action, needs_endorsement: bool, message: str
) -> None:
    with pytest.raises(TransitionError) as caught:
        next_state(state, action, needs_endorsement=needs_endorsement)
    assert str(caught.value) == message


def test_permission_denied_message_names_role_action_and_state() -> None:
    with pytest.raises(PermissionDenied) as caught:
        check_transition(S.SUBMITTED, A.VERIFY, R.ADMIN, needs_endorsement=False)
    assert str(caught.value) == "the admin role may not verify an application that is submitted"


def test_table_is_unambiguous() -> None:
    # No two rows may answer the same question differently.
    for s, a, ne in itertools.product(State, Action, (False, True)):
        keys = [
            (t.rejected_from, t.restores)
            for t in TRANSITIONS
            if t.state is s
            and t.action is a
            and (t.needs_endorsement is None or t.needs_endorsement is ne)
        ]
        assert len(keys) == len(set(keys)), (s, a, ne)


@pytest.mark.parametrize(
    ("state", "sets"),
    [
        pytest.param(S.DRAFT, {"pending"}, id="draft"),
        pytest.param(S.SUBMITTED, {"pending"}, id="submitted"),
        pytest.param(S.ISP_VERIFIED, {"pending"}, id="isp_verified"),
        pytest.param(S.SECTOR_ENDORSED, {"pending"}, id="sector_endorsed"),
        pytest.param(S.APPROVED, {"decided"}, id="approved"),
        pytest.param(S.ACTIVE, {"decided", "registered"}, id="active"),
        pytest.param(S.EXPIRING, {"decided", "registered"}, id="expiring"),
        pytest.param(S.EXPIRED, {"decided", "terminal"}, id="expired"),
        pytest.param(S.REJECTED, {"pending"}, id="rejected"),
        pytest.param(S.APPEALED, {"pending"}, id="appealed"),
        pytest.param(S.UPHELD, {"decided", "terminal"}, id="upheld"),
        pytest.param(S.REVOKED, {"decided", "terminal"}, id="revoked"),
        pytest.param(S.WITHDRAWN, {"terminal"}, id="withdrawn"),
        pytest.param(S.SUSPENDED, {"decided"}, id="suspended"),
    ],
)
def test_state_sets(state: State, sets: set[str]) -> None:
    named = {
        "pending": PENDING_STATES,
        "decided": DECIDED_STATES,
        "registered": REGISTERED_STATES,
        "terminal": TERMINAL_STATES,
    }
    assert {name for name, members in named.items() if state in members} == sets
    # Terminal means what it says: nobody can act on it any more.
    leaves = any(
        allowed_actions(state, r, needs_endorsement=ne)
        for r, ne in itertools.product(Role, (False, True))
    )
    assert leaves is (state not in TERMINAL_STATES)
    # Pending means the applicant can still withdraw.
    can_withdraw = A.WITHDRAW in allowed_actions(state, R.APPLICANT, needs_endorsement=False)
    assert can_withdraw is (state in PENDING_STATES)


# --- dates and time ------------------------------------------------------------------------


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


D = dt.date
US = dt.timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("valid_until", "tz", "end"),
    [
        # Karachi is UTC+5 all year now: the day ends at 19:00 UTC.
        pytest.param(D(2026, 4, 15), KARACHI, utc(2026, 4, 15, 19), id="karachi"),
        pytest.param(D(2026, 12, 31), KARACHI, utc(2026, 12, 31, 19), id="karachi-new-year"),
        # London: the same calendar rule gives different UTC instants either side of DST.
        pytest.param(D(2026, 3, 28), LONDON, utc(2026, 3, 29, 0), id="london-last-gmt-day"),
        pytest.param(D(2026, 3, 29), LONDON, utc(2026, 3, 29, 23), id="london-spring-forward"),
        pytest.param(D(2026, 10, 24), LONDON, utc(2026, 10, 24, 23), id="london-last-bst-day"),
        pytest.param(D(2026, 10, 25), LONDON, utc(2026, 10, 26, 0), id="london-fall-back"),
        # Pakistan did keep DST in 2008, switching at local midnight: the day after the gap
        # starts at the transition, and the repeated hour belongs to the day before.
        pytest.param(D(2008, 5, 31), KARACHI, utc(2008, 5, 31, 19), id="karachi-2008-gap"),
        pytest.param(D(2008, 6, 1), KARACHI, utc(2008, 6, 1, 18), id="karachi-2008-summer"),
        pytest.param(D(2008, 10, 31), KARACHI, utc(2008, 10, 31, 19), id="karachi-2008-fold"),
        pytest.param(
            D(2026, 4, 15),
            dt.timezone(dt.timedelta(hours=-3)),
            utc(2026, 4, 16, 3),
            id="fixed-offset",
        ),
    ],
)
def test_validity_end(valid_until: dt.date, tz: dt.tzinfo, end: dt.datetime) -> None:
    got = validity_end(valid_until, tz)
    assert got == end
    assert got.tzinfo is UTC
    # The end is exclusive: one microsecond earlier it is still valid_until in the zone.
    assert (got - US).astimezone(tz).date() == valid_until
    assert got.astimezone(tz).date() == valid_until + dt.timedelta(days=1)


FROM = utc(2026, 1, 15, 9)  # 14:00 in Karachi
UNTIL = D(2026, 4, 15)  # ends 2026-04-15T19:00Z in Karachi


@pytest.mark.parametrize(
    ("state", "at", "tz", "registered"),
    [
        pytest.param(S.ACTIVE, FROM - US, KARACHI, False, id="before-valid-from"),
        pytest.param(S.ACTIVE, FROM, KARACHI, True, id="at-valid-from"),
        pytest.param(S.ACTIVE, utc(2026, 4, 15, 18, 59, 59, 999999), KARACHI, True, id="last-us"),
        pytest.param(S.ACTIVE, utc(2026, 4, 15, 19), KARACHI, False, id="karachi-midnight"),
        pytest.param(S.EXPIRING, utc(2026, 4, 15, 18), KARACHI, True, id="expiring-counts"),
        pytest.param(S.EXPIRING, utc(2026, 4, 15, 19), KARACHI, False, id="expiring-ended"),
        # The same date in London ends five hours later (BST, UTC+1 -> 23:00Z).
        pytest.param(S.ACTIVE, utc(2026, 4, 15, 22, 59), LONDON, True, id="london-late"),
        pytest.param(S.ACTIVE, utc(2026, 4, 15, 23), LONDON, False, id="london-midnight"),
        pytest.param(S.APPROVED, utc(2026, 2, 1), KARACHI, False, id="approved-not-yet"),
        pytest.param(S.EXPIRED, utc(2026, 2, 1), KARACHI, False, id="expired-state"),
        pytest.param(S.REVOKED, utc(2026, 2, 1), KARACHI, False, id="revoked"),
        pytest.param(S.SUBMITTED, utc(2026, 2, 1), KARACHI, False, id="submitted"),
        pytest.param(S.SUSPENDED, utc(2026, 2, 1), KARACHI, False, id="suspended"),
    ],
)
def test_is_registered(state: State, at: dt.datetime, tz: dt.tzinfo, registered: bool) -> None:
    assert (
        is_registered(state=state, valid_from=FROM, valid_until=UNTIL, at=at, tz=tz) is registered
    )


def test_is_registered_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="aware"):
        is_registered(
            state=S.ACTIVE,
            valid_from=FROM,
            valid_until=UNTIL,
            at=dt.datetime(2026, 2, 1),
            tz=KARACHI,
        )


@pytest.mark.parametrize(
    ("state", "at", "action"),
    [
        pytest.param(S.APPROVED, FROM - US, None, id="approved-early"),
        pytest.param(S.APPROVED, FROM, A.ACTIVATE, id="approved-on-time"),
        pytest.param(S.APPROVED, utc(2026, 5, 1), A.ACTIVATE, id="approved-late"),
        pytest.param(S.ACTIVE, utc(2026, 3, 16, 18, 59), None, id="active-before-notice"),
        # The last 30 local days (2026-03-17..2026-04-15) start at 2026-03-16T19:00Z.
        pytest.param(S.ACTIVE, utc(2026, 3, 16, 19), A.MARK_EXPIRING, id="active-notice"),
        pytest.param(S.ACTIVE, utc(2026, 4, 15, 19), A.EXPIRE, id="active-at-end"),
        pytest.param(S.EXPIRING, utc(2026, 4, 15, 18, 59), None, id="expiring-still-valid"),
        pytest.param(S.EXPIRING, utc(2026, 4, 15, 19), A.EXPIRE, id="expiring-at-end"),
        pytest.param(S.EXPIRED, utc(2026, 5, 1), None, id="expired-stays"),
        pytest.param(S.REVOKED, utc(2026, 5, 1), None, id="revoked-stays"),
        pytest.param(S.SUBMITTED, utc(2026, 5, 1), None, id="submitted-untouched"),
        # Suspended: still ends at its end, but is neither activated nor marked expiring.
        pytest.param(S.SUSPENDED, FROM - US, None, id="suspended-early"),
        pytest.param(S.SUSPENDED, utc(2026, 3, 16, 19), None, id="suspended-in-notice"),
        pytest.param(S.SUSPENDED, utc(2026, 4, 15, 18, 59), None, id="suspended-last-minute"),
        pytest.param(S.SUSPENDED, utc(2026, 4, 15, 19), A.EXPIRE, id="suspended-at-end"),
    ],
)
def test_time_transition(state: State, at: dt.datetime, action: Action | None) -> None:
    got = time_transition(state=state, valid_from=FROM, valid_until=UNTIL, at=at, tz=KARACHI)
    assert got is action


def sweep(state: State, at: dt.datetime) -> list[Action]:
    """What a caller does: apply time's action and ask again until nothing is due."""
    taken = []
    while (
        action := time_transition(
            state=state, valid_from=FROM, valid_until=UNTIL, at=at, tz=KARACHI
        )
    ) is not None:
        state = check_transition(state, action, R.SYSTEM, needs_endorsement=False)
        taken.append(action)
    return taken


@pytest.mark.parametrize(
    ("at", "actions"),
    [
        pytest.param(FROM, [A.ACTIVATE], id="just-active"),
        pytest.param(utc(2026, 4, 1), [A.ACTIVATE, A.MARK_EXPIRING], id="into-notice"),
        pytest.param(utc(2026, 6, 1), [A.ACTIVATE, A.EXPIRE], id="straight-to-expired"),
    ],
)
def test_time_transitions_chain(at: dt.datetime, actions: list[Action]) -> None:
    assert sweep(S.APPROVED, at) == actions


@pytest.mark.parametrize(
    ("at", "state"),
    [
        pytest.param(FROM - US, S.APPROVED, id="not-yet-valid"),
        pytest.param(FROM, S.ACTIVE, id="valid"),
        pytest.param(utc(2026, 3, 16, 18, 59), S.ACTIVE, id="before-notice"),
        pytest.param(utc(2026, 3, 16, 19), S.EXPIRING, id="in-notice"),
        pytest.param(utc(2026, 4, 15, 18, 59), S.EXPIRING, id="last-minute"),
        pytest.param(utc(2026, 4, 15, 19), S.EXPIRED, id="ended"),
    ],
)
def test_restored_state_is_where_time_takes_an_approval(at: dt.datetime, state: State) -> None:
    assert restored_state(valid_from=FROM, valid_until=UNTIL, at=at, tz=KARACHI) is state
    # The same relation stated through the sweep: approved, then time's steps.
    swept = S.APPROVED
    for action in sweep(S.APPROVED, at):
        swept = next_state(swept, action, needs_endorsement=False)
    assert swept is state


@pytest.mark.parametrize(
    ("tz", "start"),
    [
        pytest.param(KARACHI, utc(2026, 3, 16, 19), id="karachi"),
        # Across the spring change the 30 local days are 30 days less one hour long.
        pytest.param(LONDON, utc(2026, 3, 17, 0), id="london-across-dst"),
    ],
)
def test_expiring_from_is_thirty_local_days_before_the_end(
    tz: dt.tzinfo, start: dt.datetime
) -> None:
    got = expiring_from(UNTIL, tz)
    assert got == start
    assert got.astimezone(tz).date() == UNTIL - dt.timedelta(days=29)
    assert got.astimezone(tz).time() == dt.time(0)


@pytest.mark.parametrize(
    ("start", "tz", "until"),
    [
        pytest.param(utc(2026, 1, 15, 9), KARACHI, D(2026, 4, 15), id="karachi-afternoon"),
        # 19:30Z is already the next day in Karachi.
        pytest.param(utc(2026, 1, 15, 19, 30), KARACHI, D(2026, 4, 16), id="karachi-next-day"),
        pytest.param(utc(2026, 1, 15, 19, 30), LONDON, D(2026, 4, 15), id="london-evening"),
    ],
)
def test_provisional_until(start: dt.datetime, tz: dt.tzinfo, until: dt.date) -> None:
    got = provisional_until(start, tz)
    assert got == until
    # At least 90 full days of validity, and less than 91.
    span = validity_end(got, tz) - start
    assert dt.timedelta(days=90) <= span < dt.timedelta(days=91)


def test_provisional_until_refuses_naive_start() -> None:
    with pytest.raises(ValueError, match="aware"):
        provisional_until(dt.datetime(2026, 1, 15, 9), KARACHI)


@pytest.mark.parametrize(
    ("old_until", "tz", "valid_from", "valid_until"),
    [
        pytest.param(D(2026, 4, 15), KARACHI, utc(2026, 4, 15, 19), D(2027, 4, 15), id="karachi"),
        pytest.param(D(2026, 3, 28), LONDON, utc(2026, 3, 29, 0), D(2027, 3, 28), id="london"),
        # 365 days, not "same date next year", across a 29 February.
        pytest.param(D(2027, 4, 15), KARACHI, utc(2027, 4, 15, 19), D(2028, 4, 14), id="leap"),
    ],
)
def test_renewal_period(
    old_until: dt.date, tz: dt.tzinfo, valid_from: dt.datetime, valid_until: dt.date
) -> None:
    got_from, got_until = renewal_period(old_until, tz)
    assert (got_from, got_until) == (valid_from, valid_until)
    # The renewal starts exactly where the old registration stops: no gap, no overlap.
    assert got_from == validity_end(old_until, tz)
    for at in (got_from - US, got_from):
        old = is_registered(state=S.ACTIVE, valid_from=FROM, valid_until=old_until, at=at, tz=tz)
        new = is_registered(
            state=S.ACTIVE, valid_from=got_from, valid_until=got_until, at=at, tz=tz
        )
        assert old != new
