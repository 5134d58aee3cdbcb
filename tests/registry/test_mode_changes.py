"""Mode changes announced with a reason, trials reverted at their planned end (both backends)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.registry.conftest import World
from vpnreg.clock import FrozenClock
from vpnreg.core.feed import EnforcementMode, Mode, VpnProtocol
from vpnreg.registry import services
from vpnreg.registry.errors import ValidationFailed
from vpnreg.registry.models import AuditLogRow
from vpnreg.registry.services.mode_changes import list_changes, trial_due
from vpnreg.registry.services.mode_trials import end_due_trials


def test_a_change_needs_a_reason_and_a_future_end(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    services.publish(session, now=now, config=config)
    for reason, until, field in [
        ("  ", None, "reason"),
        ("x" * 501, None, "reason"),
        ("trial", now, "until"),
        ("trial", now.replace(tzinfo=None) + dt.timedelta(hours=1), "until"),
    ]:
        with pytest.raises(ValidationFailed) as bad:
            services.set_mode(session, mode="dry-run", reason=reason, until=until,
                              actor=world.regulator, now=now, config=config)  # fmt: skip
        assert [e.field for e in bad.value.errors] == [field]
    assert list_changes(session) == []
    assert services.current_feed(session).mode == EnforcementMode.enforce_all()  # type: ignore[union-attr]


def test_a_protocol_trial_is_announced_audited_and_reverted_at_its_end(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    start = clock.now()
    services.publish(session, now=start, config=config)
    end = start + dt.timedelta(days=2)
    trial = services.set_mode(
        session, mode="dry-run", protocol="wireguard", reason="new WireGuard rule in dry run",
        until=end, actor=world.regulator, now=start, config=config,
    )  # fmt: skip
    assert trial.mode.effective("wireguard") is Mode.DRY_RUN
    [announced] = list_changes(session)
    assert (announced.protocol, announced.from_mode, announced.to_mode) == (
        "wireguard", Mode.ENFORCE, Mode.DRY_RUN
    )  # fmt: skip
    assert (announced.reason, announced.actor_role, announced.planned_end) == (
        "new WireGuard rule in dry run", "regulator", end
    )  # fmt: skip
    assert announced.ended_at is None and announced.serial == trial.serial
    assert "reg1" not in str(announced.to_json())

    clock.advance(dt.timedelta(days=1))
    assert not trial_due(session, clock.now())
    assert end_due_trials(session, now=clock.now(), config=config) == []

    clock.advance(dt.timedelta(days=1))
    assert trial_due(session, clock.now())
    [reverted] = end_due_trials(session, now=clock.now(), config=config)
    assert reverted.mode.effective("wireguard") is Mode.ENFORCE
    assert reverted.serial == trial.serial + 1
    assert not trial_due(session, clock.now())
    assert end_due_trials(session, now=clock.now(), config=config) == []

    revert, ended = list_changes(session)
    assert (ended.ended_at, ended.ended_by) == (clock.now(), "planned end")
    assert (revert.protocol, revert.from_mode, revert.to_mode, revert.actor_role) == (
        "wireguard", Mode.DRY_RUN, Mode.ENFORCE, "system"
    )  # fmt: skip
    assert revert.reason.startswith(f"planned end of trial {ended.id} ")
    assert revert.ended_at is None and revert.planned_end is None

    events = session.scalars(
        select(AuditLogRow).where(AuditLogRow.action == "feed.mode").order_by(AuditLogRow.seq)
    ).all()
    assert [(e.actor, e.after["protocol"], e.after["reason"][:14]) for e in events] == [
        ("reg1", "wireguard", "new WireGuard "),
        ("system", "wireguard", "planned end of"),
    ]
    assert events[0].after["until"] == end.isoformat()
    assert events[1].after["until"] is None


def test_a_later_change_replaces_a_trial_which_is_then_not_reverted(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    services.publish(session, now=now, config=config)
    services.set_mode(session, mode="dry-run", protocol="openvpn", reason="trial",
                      until=now + dt.timedelta(hours=1), actor=world.regulator, now=now,
                      config=config)  # fmt: skip
    services.set_mode(session, mode="dry-run", protocol="wireguard", reason="other protocol",
                      actor=world.regulator, now=now, config=config)  # fmt: skip
    clock.advance(dt.timedelta(minutes=10))
    services.set_mode(session, mode="enforce", protocol="openvpn", reason="trial cut short",
                      actor=world.regulator2, now=clock.now(), config=config)  # fmt: skip
    clock.advance(dt.timedelta(hours=2))
    assert end_due_trials(session, now=clock.now(), config=config) == []
    latest, wireguard, openvpn_trial = list_changes(session)
    assert openvpn_trial.ended_by == f"replaced by change {latest.id}"
    assert wireguard.ended_at is None  # another protocol's change does not end it
    mode = services.current_feed(session).mode  # type: ignore[union-attr]
    assert mode.effective("openvpn") is Mode.ENFORCE
    assert mode.effective("wireguard") is Mode.DRY_RUN


def test_a_national_trial_restores_the_overrides_it_dropped(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    services.publish(session, now=now, config=config)
    services.set_mode(session, mode="dry-run", protocol="ipsec", reason="ipsec review",
                      actor=world.regulator, now=now, config=config)  # fmt: skip
    before = services.current_feed(session).mode  # type: ignore[union-attr]
    services.set_mode(session, mode="dry-run", reason="national dry run for a week",
                      until=now + dt.timedelta(days=7), actor=world.regulator, now=now,
                      config=config)  # fmt: skip
    national = list_changes(session)[0]
    assert (national.protocol, national.from_mode, national.to_mode) == (
        None, Mode.ENFORCE, Mode.DRY_RUN
    )  # fmt: skip
    assert list_changes(session)[1].ended_by == f"replaced by change {national.id}"
    clock.advance(dt.timedelta(days=7))
    steps = end_due_trials(session, now=clock.now(), config=config)
    assert len(steps) == 2
    after = services.current_feed(session).mode  # type: ignore[union-attr]
    assert after == before == EnforcementMode(Mode.ENFORCE, {VpnProtocol.IPSEC: Mode.DRY_RUN})
    assert [c.actor_role for c in list_changes(session)[:2]] == ["system", "system"]
