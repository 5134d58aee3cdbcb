"""Submitting over registered space is refused at submit, by every path through take_step
(issue 15 item 4), naming the registration only to a submitter who may see it; tracking numbers
are random and drawn again on a collision (item 10)."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.registry.conftest import World
from tests.registry.flow import act, approved, draft, ready_for_decision
from vpnreg.clock import FrozenClock
from vpnreg.core.tracking import ALPHABET, RANDOM_BYTES, is_random_tracking_number
from vpnreg.registry import services
from vpnreg.registry.errors import OverlapConflict
from vpnreg.registry.models import Application, AuditLogRow


def _events(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditLogRow)) or 0


@pytest.mark.parametrize(
    ("holder_is_bank", "asked", "named"),
    [
        (False, "203.0.113.0/24", True),
        (False, "203.0.113.128/25", True),
        (True, "203.0.113.0/24", False),
        (True, "203.0.112.0/23", False),
    ],
    ids=["own-duplicate", "own-inside", "other-org-duplicate", "other-org-covering"],
)
def test_submit_over_registered_space_is_refused_with_409_and_nothing_changes(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock,
    holder_is_bank: bool, asked: str, named: bool,
) -> None:  # fmt: skip
    holder = approved(
        session, world, config, clock.now(), [("203.0.113.0/24", [])], bank=holder_is_bank
    )
    assert holder.state == "active"
    app = draft(session, world, config, clock.now(), [(asked, [])])
    before = _events(session)
    with pytest.raises(OverlapConflict) as info:
        act("submit", session, application_id=app.id, actor=world.applicant, now=clock.now(),
            config=config)  # fmt: skip
    assert info.value.status == 409
    assert asked in str(info.value) and "203.0.113.0/24" in str(info.value)
    assert "already registered" in str(info.value)
    assert (holder.tracking_number in str(info.value)) is named
    session.expire_all()
    assert session.get(Application, app.id).state == "draft"  # type: ignore[union-attr]
    assert _events(session) == before


def test_a_claim_still_in_review_does_not_block_submission(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    ready_for_decision(session, world, config, clock.now(), [("203.0.113.0/24", [])], bank=True)
    app = draft(session, world, config, clock.now(), [("203.0.113.0/24", [])])
    after = act("submit", session, application_id=app.id, actor=world.applicant,
                now=clock.now(), config=config)  # fmt: skip
    assert after.state == "submitted"


def test_apply_and_submit_in_one_unit_leaves_no_draft_when_refused(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    approved(session, world, config, clock.now(), [("203.0.113.0/24", [])], bank=True)
    count = session.scalar(select(func.count()).select_from(Application))
    with pytest.raises(OverlapConflict):
        services.apply_for_registration(
            session, organisation_id=world.soft_org, isp_id=world.isp,
            prefixes=[("203.0.113.64/26", [])], submit=True, actor=world.applicant,
            now=clock.now(), config=config,
        )  # fmt: skip
    assert session.scalar(select(func.count()).select_from(Application)) == count


def test_a_renewal_is_not_blocked_by_the_registration_it_continues(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    old = approved(session, world, config, clock.now(), [("203.0.113.0/24", [])])
    renewal = act("renew", session, application_id=old.id, actor=world.applicant,
                  now=clock.now(), config=config)  # fmt: skip
    assert renewal.state == "submitted" and renewal.renews_id == old.id


def test_tracking_numbers_are_random_and_a_collision_is_drawn_again(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    first = draft(session, world, config, clock.now(), [("203.0.113.0/28", [])])
    assert first.tracking_number is not None and is_random_tracking_number(first.tracking_number)
    # A source that first repeats the bytes that made `first`'s number, then gives new ones.
    part = first.tracking_number[9:].replace("-", "")
    value = sum(ALPHABET.index(ch) * len(ALPHABET) ** i for i, ch in enumerate(part))
    draws = [value.to_bytes(RANDOM_BYTES, "big"), bytes(range(1, RANDOM_BYTES + 1))]
    seeded = dataclasses.replace(config, random_bytes=lambda n: draws.pop(0))
    second = draft(session, world, seeded, clock.now(), [("203.0.113.16/28", [])])
    assert draws == []
    assert second.tracking_number != first.tracking_number
    assert second.tracking_number is not None
    assert is_random_tracking_number(second.tracking_number)
