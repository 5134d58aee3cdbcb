"""The review steps on both backends: states, versions, permissions, overlap, appeals."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.registry.conftest import KARACHI, World
from tests.registry.flow import act, approved, draft, ready_for_decision
from vpnreg.clock import FrozenClock
from vpnreg.core.tracking import is_random_tracking_number
from vpnreg.registry import services
from vpnreg.registry.audit_log import verify_audit
from vpnreg.registry.errors import (
    Forbidden,
    OverlapConflict,
    StaleVersion,
    StateConflict,
    ValidationFailed,
)
from vpnreg.registry.models import Application, AuditLogRow, Claim, Review


def _audit_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditLogRow)) or 0


def test_full_flow_with_endorsement_activates_on_approval(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    app = draft(session, world, config, now, [("203.0.113.0/24", ["198.51.100.7"])])
    assert app.state == "draft"
    assert app.version == 1
    assert app.tracking_number is not None and is_random_tracking_number(app.tracking_number)
    assert app.tracking_number.startswith("VPN-2026-")
    assert app.category == "software_house"
    steps = [
        ("submit", world.applicant, "submitted"),
        ("verify", world.isp_user, "isp_verified"),
        ("endorse", world.sector_user, "sector_endorsed"),
        ("approve", world.regulator, "active"),
    ]
    for step, actor, state in steps:
        before = _audit_count(session)
        app = act(
            step,
            session,
            application_id=app.id,
            actor=actor,
            now=now,
            config=config,
            expected_version=app.version,
        )
        assert app.state == state
        assert _audit_count(session) > before
    assert app.valid_from == now
    assert app.valid_until == dt.date(2026, 1, 15) + dt.timedelta(days=90)
    claims = session.scalars(select(Claim).where(Claim.application_id == app.id)).all()
    assert [c.prefix_text for c in claims] == ["203.0.113.0/24"]
    reviews = session.scalars(
        select(Review.action).where(Review.application_id == app.id).order_by(Review.id)
    ).all()
    assert reviews == ["submit", "verify", "endorse", "approve", "activate"]
    assert verify_audit(session) is None


def test_category_without_endorsement_goes_straight_to_regulator(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = ready_for_decision(session, world, config, clock.now(), [("192.0.2.0/24", [])], bank=True)
    assert app.state == "isp_verified"
    with pytest.raises(StateConflict):
        act(
            "endorse",
            session,
            application_id=app.id,
            actor=world.sector_user,
            now=clock.now(),
            config=config,
        )
    app = act(
        "approve",
        session,
        application_id=app.id,
        actor=world.regulator,
        now=clock.now(),
        config=config,
    )
    assert app.state == "active"


def test_stale_version_is_refused_and_nothing_changes(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = draft(session, world, config, clock.now(), [("192.0.2.0/24", [])])
    act(
        "submit",
        session,
        application_id=app.id,
        actor=world.applicant,
        now=clock.now(),
        config=config,
        expected_version=1,
    )
    events = _audit_count(session)
    with pytest.raises(StaleVersion) as info:
        act(
            "verify",
            session,
            application_id=app.id,
            actor=world.isp_user,
            now=clock.now(),
            config=config,
            expected_version=1,
        )
    assert (info.value.expected, info.value.actual) == (1, 2)
    session.expire_all()
    stored = session.get(Application, app.id)
    assert stored is not None
    assert (stored.state, stored.version) == ("submitted", 2)
    assert _audit_count(session) == events


def test_wrong_isp_cannot_verify(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = draft(session, world, config, clock.now(), [("192.0.2.0/24", [])])
    act(
        "submit",
        session,
        application_id=app.id,
        actor=world.applicant,
        now=clock.now(),
        config=config,
    )
    with pytest.raises(Forbidden, match="not a user of the ISP"):
        act(
            "verify",
            session,
            application_id=app.id,
            actor=world.other_isp_user,
            now=clock.now(),
            config=config,
        )
    assert session.get(Application, app.id).state == "submitted"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("who", "step"),
    [
        ("applicant", "approve"),
        ("isp_user", "approve"),
        ("sector_user", "approve"),
        ("regulator", "endorse"),
    ],
    ids=["applicant-approves", "isp-approves", "sector-approves", "regulator-endorses"],
)
def test_roles_outside_their_step_are_forbidden(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    clock: FrozenClock,
    who: str,
    step: str,
) -> None:
    app = draft(session, world, config, clock.now(), [("192.0.2.0/24", [])])
    kw = {"application_id": app.id, "now": clock.now(), "config": config}
    act("submit", session, actor=world.applicant, **kw)  # type: ignore[arg-type]
    act("verify", session, actor=world.isp_user, **kw)  # type: ignore[arg-type]
    if step == "approve":
        act("endorse", session, actor=world.sector_user, **kw)  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        act(step, session, actor=getattr(world, who), **kw)  # type: ignore[arg-type]


def test_create_application_reports_every_problem_at_once(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    with pytest.raises(ValidationFailed) as info:
        draft(
            session,
            world,
            config,
            clock.now(),
            [
                ("192.0.2.0/24", []),
                ("10.0.0.0/24", []),
                ("192.0.2.128/25", []),
                ("198.51.100.1/24", ["not-an-ip"]),
                ("192.0.0.0/16", []),
            ],
        )
    got = [(e.field, e.code) for e in info.value.errors]
    assert got == [
        ("prefixes[1]", "private"),
        ("prefixes[3]", "host_bits_set"),
        ("prefixes[3].peers[0]", "malformed"),
        ("prefixes[4]", "too_broad"),
        ("prefixes[2]", "overlap"),
    ]
    assert session.scalar(select(func.count()).select_from(Application)) == 0


def test_overlapping_approval_is_refused_naming_the_holder(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    # Both in review at once (a submission overlapping space already registered is refused at
    # submit, tests/registry/test_submission.py): the first to be approved wins.
    first = ready_for_decision(
        session, world, config, clock.now(), [("203.0.113.0/24", [])], bank=True
    )
    second = ready_for_decision(session, world, config, clock.now(), [("203.0.113.128/25", [])])
    first = act(
        "approve",
        session,
        application_id=first.id,
        actor=world.regulator,
        now=clock.now(),
        config=config,
    )
    with pytest.raises(OverlapConflict) as info:
        act(
            "approve",
            session,
            application_id=second.id,
            actor=world.regulator,
            now=clock.now(),
            config=config,
        )
    assert info.value.tracking_number == first.tracking_number
    assert first.tracking_number in str(info.value)
    session.expire_all()
    assert session.get(Application, second.id).state == "sector_endorsed"  # type: ignore[union-attr]
    # Once the holder is revoked, the space is free again.
    act(
        "revoke",
        session,
        application_id=first.id,
        actor=world.regulator,
        reason="fraud",
        now=clock.now(),
        config=config,
    )
    app = act(
        "approve",
        session,
        application_id=second.id,
        actor=world.regulator,
        now=clock.now(),
        config=config,
    )
    assert app.state == "active"


def test_reject_appeal_overturn_needs_a_different_regulator(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = ready_for_decision(session, world, config, clock.now(), [("192.0.2.0/24", [])])
    kw = {"application_id": app.id, "now": clock.now(), "config": config}
    app = act(
        "reject",
        session,
        actor=world.regulator,
        reason_code="documents",
        reason="no contract",
        **kw,  # type: ignore[arg-type]
    )
    assert (app.state, app.rejected_from) == ("rejected", "sector_endorsed")
    app = act("appeal", session, actor=world.applicant, text="contract attached", **kw)  # type: ignore[arg-type]
    assert app.state == "appealed"
    with pytest.raises(Forbidden, match="rejected"):
        act("overturn", session, actor=world.regulator, reason="ok", **kw)  # type: ignore[arg-type]
    app = act("overturn", session, actor=world.regulator2, reason="contract seen", **kw)  # type: ignore[arg-type]
    assert app.state == "active"
    assert (
        session.scalar(
            select(func.count()).select_from(Claim).where(Claim.application_id == app.id)
        )
        == 1
    )


def test_isp_rejection_overturned_resumes_at_verified(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = draft(session, world, config, clock.now(), [("192.0.2.0/24", [])])
    kw = {"application_id": app.id, "now": clock.now(), "config": config}
    act("submit", session, actor=world.applicant, **kw)  # type: ignore[arg-type]
    act("reject", session, actor=world.isp_user, reason_code="not_ours", reason="x", **kw)  # type: ignore[arg-type]
    act("appeal", session, actor=world.applicant, text="it is ours", **kw)  # type: ignore[arg-type]
    app = act("overturn", session, actor=world.regulator, reason="checked", **kw)  # type: ignore[arg-type]
    assert app.state == "isp_verified"


def test_uphold_ends_the_application(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = ready_for_decision(session, world, config, clock.now(), [("192.0.2.0/24", [])], bank=True)
    kw = {"application_id": app.id, "now": clock.now(), "config": config}
    act("reject", session, actor=world.regulator, reason_code="r", reason="r", **kw)  # type: ignore[arg-type]
    act("appeal", session, actor=world.bank_applicant, text="please", **kw)  # type: ignore[arg-type]
    # The rejecter may not decide the appeal against its own rejection, either way.
    with pytest.raises(Forbidden, match="another reviewer decides it"):
        act("uphold", session, actor=world.regulator, reason="no", **kw)  # type: ignore[arg-type]
    app = act("uphold", session, actor=world.regulator2, reason="no", **kw)  # type: ignore[arg-type]
    assert app.state == "upheld"
    with pytest.raises(StateConflict):
        act("withdraw", session, actor=world.bank_applicant, **kw)  # type: ignore[arg-type]


def test_withdraw_by_applicant_only_of_own_organisation(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = draft(session, world, config, clock.now(), [("192.0.2.0/24", [])])
    kw = {"application_id": app.id, "now": clock.now(), "config": config}
    with pytest.raises(Forbidden):
        act("withdraw", session, actor=world.bank_applicant, **kw)  # type: ignore[arg-type]
    app = act("withdraw", session, actor=world.applicant, **kw)  # type: ignore[arg-type]
    assert (app.state, app.version) == ("withdrawn", 2)


def test_approval_day_boundary_is_in_karachi(
    session: Session, world: World, config: services.ServiceConfig
) -> None:
    # 20:00 UTC is already the next day (01:00) in Karachi.
    now = dt.datetime(2026, 3, 1, 20, 0, tzinfo=dt.UTC)
    app = approved(session, world, config, now, [("192.0.2.0/24", [])], bank=True)
    assert app.valid_until == now.astimezone(KARACHI).date() + dt.timedelta(days=90)
    assert app.valid_until == dt.date(2026, 5, 31)
