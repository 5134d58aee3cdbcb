"""The ISP's withdrawal of its attestation (issue 17): a registration goes to `suspended`, off
the allowlist but still holding its space, the applicant is told why; the ISP's re-attestation
restores it where its dates say, without a new review; the regulator may revoke it; time still
ends it. Both backends."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.registry.conftest import World
from tests.registry.flow import act, approved, draft, ready_for_decision
from vpnreg.clock import FrozenClock
from vpnreg.core.review import validity_end
from vpnreg.registry import services
from vpnreg.registry.errors import (
    Forbidden,
    OverlapConflict,
    StaleVersion,
    StateConflict,
    ValidationFailed,
)
from vpnreg.registry.models import AuditLogRow, Claim, Review
from vpnreg.registry.services.outbox import list_outbox
from vpnreg.registry.views import ApplicationView

PREFIX = "192.0.2.0/24"
REASON = "line cancelled on 2026-01-14; address reassigned to another subscriber"


def _registered(
    session: Session, world: World, config: services.ServiceConfig, now: dt.datetime
) -> ApplicationView:
    return approved(session, world, config, now, [(PREFIX, [])], bank=True)


def _withdraw(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    now: dt.datetime,
    app: ApplicationView,
) -> ApplicationView:
    return act("withdraw_attestation", session, application_id=app.id, actor=world.isp_user,
               now=now, config=config, expected_version=app.version, reason=REASON)  # fmt: skip


def _claims(session: Session, application_id: int) -> list[str]:
    return list(
        session.scalars(select(Claim.prefix_text).where(Claim.application_id == application_id))
    )


def _registered_at(
    session: Session, config: services.ServiceConfig, now: dt.datetime, address: str
) -> bool:
    return services.lookup(session, address=address, now=now, config=config).registered


def _rival(
    session: Session, world: World, config: services.ServiceConfig, now: dt.datetime
) -> ApplicationView:
    """An application for part of PREFIX that reached the regulator before PREFIX was
    registered (claims in review do not block; the first approved wins)."""
    return ready_for_decision(session, world, config, now, [("192.0.2.128/25", [])], bank=True)


def test_withdrawal_suspends_audits_tells_the_applicant_and_keeps_the_space(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    other = _rival(session, world, config, now)
    app = _registered(session, world, config, now)
    assert app.state == "active" and _registered_at(session, config, now, "192.0.2.7")
    suspended = _withdraw(session, world, config, now, app)
    assert (suspended.state, suspended.version) == ("suspended", app.version + 1)
    # Dates untouched: a re-attestation resumes the same registration.
    assert (suspended.valid_from, suspended.valid_until) == (app.valid_from, app.valid_until)
    assert not _registered_at(session, config, now, "192.0.2.7")
    # The review row and the audit event carry the reason, written in the same transaction.
    review = session.scalars(
        select(Review).where(Review.application_id == app.id).order_by(Review.id.desc())
    ).first()
    assert review is not None
    assert (review.action, review.from_state, review.to_state, review.actor, review.reason) == (
        "withdraw_attestation", "active", "suspended", "noc", REASON,
    )  # fmt: skip
    event = session.scalars(select(AuditLogRow).order_by(AuditLogRow.seq.desc())).first()
    assert event is not None
    assert (event.action, event.actor, event.object_id) == (
        "withdraw_attestation", "noc", str(app.id),
    )  # fmt: skip
    assert event.before["state"] == "active"
    assert (event.after["state"], event.after["reason"]) == ("suspended", REASON)
    assert services.verify_audit(session) is None
    # The applicant is told, with the reason and what it means.
    [message] = [
        m for m in list_outbox(session, application_id=app.id) if m.event == "withdraw_attestation"
    ]
    assert message.recipient == "bina"
    assert "active -> suspended" in message.subject
    assert REASON in message.body and "off the allowlist" in message.body
    # The space stays held: nobody else may apply for it or be approved for it meanwhile.
    assert _claims(session, app.id) == [PREFIX]
    with pytest.raises(OverlapConflict):
        act("approve", session, application_id=other.id, actor=world.regulator, now=now,
            config=config)  # fmt: skip
    newcomer = draft(session, world, config, now, [("192.0.2.0/26", [])])
    with pytest.raises(OverlapConflict, match="already registered"):
        act("submit", session, application_id=newcomer.id, actor=world.applicant, now=now,
            config=config)  # fmt: skip


def test_a_reason_is_required_and_only_the_attesting_isp_may_withdraw(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    app = _registered(session, world, config, now)
    with pytest.raises(ValidationFailed, match="withdraw_attestation needs a reason"):
        act("withdraw_attestation", session, application_id=app.id, actor=world.isp_user,
            now=now, config=config, reason="  ")  # fmt: skip
    with pytest.raises(Forbidden, match="not a user of the ISP"):
        act("withdraw_attestation", session, application_id=app.id,
            actor=world.other_isp_user, now=now, config=config, reason=REASON)  # fmt: skip
    for who in (world.regulator, world.bank_applicant, world.sector_user):
        with pytest.raises(Forbidden, match="may not withdraw_attestation"):
            act("withdraw_attestation", session, application_id=app.id, actor=who, now=now,
                config=config, reason=REASON)  # fmt: skip
    with pytest.raises(StaleVersion):
        act("withdraw_attestation", session, application_id=app.id, actor=world.isp_user,
            now=now, config=config, expected_version=app.version - 1,
            reason=REASON)  # fmt: skip
    assert services.get_application(session, application_id=app.id).state == "active"
    # Nor can an application the ISP has not attested (yet) be withdrawn from.
    pending = draft(session, world, config, now, [("198.51.100.0/24", [])])
    with pytest.raises(StateConflict, match="cannot withdraw_attestation an application that"):
        act("withdraw_attestation", session, application_id=pending.id, actor=world.isp_user,
            now=now, config=config, reason=REASON)  # fmt: skip


def test_reattestation_restores_the_registration_without_a_new_review(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    app = _withdraw(session, world, config, now, _registered(session, world, config, now))
    with pytest.raises(Forbidden, match="not a user of the ISP"):
        act("reattest", session, application_id=app.id, actor=world.other_isp_user, now=now,
            config=config)  # fmt: skip
    with pytest.raises(Forbidden, match="may not reattest"):
        act("reattest", session, application_id=app.id, actor=world.regulator, now=now,
            config=config)  # fmt: skip
    clock.advance(dt.timedelta(days=2))
    back = act("reattest", session, application_id=app.id, actor=world.isp_user,
               now=clock.now(), config=config, expected_version=app.version)  # fmt: skip
    assert back.state == "active"
    assert (back.valid_from, back.valid_until) == (app.valid_from, app.valid_until)
    assert _registered_at(session, config, clock.now(), "192.0.2.7")
    steps = [
        (r.action, r.to_state)
        for r in session.scalars(
            select(Review).where(Review.application_id == app.id).order_by(Review.id)
        )
    ]
    # One step back, no verify/endorse/approve again.
    assert steps[-4:] == [
        ("approve", "approved"), ("activate", "active"), ("withdraw_attestation", "suspended"),
        ("reattest", "active"),
    ]  # fmt: skip
    assert [a for a, _ in steps].count("approve") == 1
    told = [m for m in list_outbox(session, application_id=app.id) if m.event == "reattest"]
    assert [m.recipient for m in told] == ["bina"]
    assert "in force again" in told[0].body


def test_reattestation_resumes_where_the_dates_say(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    app = _withdraw(session, world, config, now, _registered(session, world, config, now))
    assert app.valid_until is not None
    # Into the last 30 days while suspended: time does not mark it expiring, re-attestation does.
    clock.set(validity_end(app.valid_until, config.tz) - dt.timedelta(days=10))
    assert services.advance_time(session, now=clock.now(), config=config) == []
    back = act("reattest", session, application_id=app.id, actor=world.isp_user,
               now=clock.now(), config=config)  # fmt: skip
    assert back.state == "expiring"


def test_a_suspended_registration_expires_at_its_end_and_frees_its_space(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    app = _withdraw(session, world, config, now, _registered(session, world, config, now))
    assert app.valid_until is not None
    end = validity_end(app.valid_until, config.tz)
    # Past its end, before the sweep ran: nothing can restore it.
    clock.set(end)
    with pytest.raises(StateConflict, match="whose validity has ended"):
        act("reattest", session, application_id=app.id, actor=world.isp_user,
            now=clock.now(), config=config)  # fmt: skip
    [change] = services.advance_time(session, now=clock.now(), config=config)
    assert (change.from_state, change.action, change.to_state) == (
        "suspended", "expire", "expired",
    )  # fmt: skip
    assert _claims(session, app.id) == []


def test_the_regulator_may_revoke_a_suspended_registration_which_frees_its_space(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    other = _rival(session, world, config, now)
    app = _withdraw(session, world, config, now, _registered(session, world, config, now))
    with pytest.raises(Forbidden):
        act("revoke", session, application_id=app.id, actor=world.isp_user, now=now,
            config=config, reason="gone")  # fmt: skip
    revoked = act("revoke", session, application_id=app.id, actor=world.regulator, now=now,
                  config=config, reason="the line is gone for good")  # fmt: skip
    assert revoked.state == "revoked"
    assert _claims(session, app.id) == []
    with pytest.raises(StateConflict):
        act("reattest", session, application_id=app.id, actor=world.isp_user, now=now,
            config=config)  # fmt: skip
    taken = act("approve", session, application_id=other.id, actor=world.regulator, now=now,
                config=config)  # fmt: skip
    assert taken.state == "active"


def test_an_approved_registration_not_yet_in_force_is_restored_as_approved(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    old = _registered(session, world, config, now)
    assert old.valid_until is not None
    # Its renewal, approved in the old one's last days, starts at the old one's end.
    clock.set(validity_end(old.valid_until, config.tz) - dt.timedelta(days=5))
    services.advance_time(session, now=clock.now(), config=config)
    renewal = act("renew", session, application_id=old.id, actor=world.bank_applicant,
                  now=clock.now(), config=config)  # fmt: skip
    for action, who in (("verify", world.isp_user), ("approve", world.regulator)):
        renewal = act(action, session, application_id=renewal.id, actor=who,
                      now=clock.now(), config=config)  # fmt: skip
    assert renewal.state == "approved"
    suspended = _withdraw(session, world, config, clock.now(), renewal)
    assert suspended.state == "suspended"
    back = act("reattest", session, application_id=renewal.id, actor=world.isp_user,
               now=clock.now(), config=config)  # fmt: skip
    assert back.state == "approved"
    # And time then takes it on as usual.
    assert renewal.valid_from is not None
    clock.set(renewal.valid_from)
    changes = services.advance_time(session, now=clock.now(), config=config)
    mine = {(c.action, c.to_state) for c in changes if c.application_id == renewal.id}
    assert mine == {("activate", "active")}
