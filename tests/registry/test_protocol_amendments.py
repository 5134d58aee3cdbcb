"""Changing a registration's VPN protocols is an amendment (issue 17, protocol scope): the
applicant asks, the old list holds (in the registry and in the published feed) until the
regulator approves; a refusal keeps it. The rules of peer amendments, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.feed_server.flow import bank_registration
from tests.registry.conftest import World
from tests.registry.flow import act, draft
from vpnreg.clock import FrozenClock
from vpnreg.core.feed import VpnProtocol
from vpnreg.registry import services
from vpnreg.registry.errors import (
    Forbidden,
    NotFound,
    StaleVersion,
    StateConflict,
    ValidationFailed,
)
from vpnreg.registry.models import AuditLogRow


def _protocols(
    session: Session, config: services.ServiceConfig, clock: FrozenClock, app_id: int
) -> set[frozenset[VpnProtocol]]:
    return {
        e.protocols
        for e in services.registered_entries(session, now=clock.now(), config=config)
        if e.registration_id == app_id
    }


def _actions(session: Session, app_id: int) -> list[tuple[str, object, object]]:
    rows = session.scalars(
        select(AuditLogRow)
        .where(AuditLogRow.object_type == "application", AuditLogRow.object_id == str(app_id))
        .order_by(AuditLogRow.seq)
    )
    return [(r.action, r.before, r.after) for r in rows]


def test_the_old_list_holds_in_the_feed_until_the_regulator_approves(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = bank_registration(session, world, config, clock.now(), "192.0.2.0/24")
    services.publish(session, now=clock.now(), config=config)
    assert _protocols(session, config, clock, app.id) == {frozenset()}
    asked = services.amend_protocols(
        session,
        application_id=app.id,
        protocols=["wireguard", "openvpn", "wireguard"],
        actor=world.bank_applicant,
        now=clock.now(),
        expected_version=app.version,
    )
    assert asked.protocols == ("openvpn", "wireguard") and asked.state == "pending"
    assert services.pending_protocol_amendment(session, application_id=app.id) == asked
    # Pending: nothing changes in force, the feed included.
    assert services.get_application(session, application_id=app.id).protocols == ()
    assert not services.publish(session, now=clock.now(), config=config).changed
    assert _actions(session, app.id)[-1] == (
        "amend_protocols",
        {"protocols": []},
        {"pending_protocols": ["openvpn", "wireguard"], "amendment": asked.id},
    )
    current = services.get_application(session, application_id=app.id)
    with pytest.raises(StaleVersion):
        services.decide_protocol_amendment(
            session, amendment_id=asked.id, approve=True, actor=world.regulator,
            now=clock.now(), expected_version=app.version,
        )  # fmt: skip
    done = services.decide_protocol_amendment(
        session, amendment_id=asked.id, approve=True, actor=world.regulator, now=clock.now(),
        expected_version=current.version,
    )  # fmt: skip
    assert done.protocols == ("openvpn", "wireguard") and done.version == current.version + 1
    assert _protocols(session, config, clock, app.id) == {
        frozenset({VpnProtocol.OPENVPN, VpnProtocol.WIREGUARD})
    }
    assert services.publish(session, now=clock.now(), config=config).changed
    assert _actions(session, app.id)[-1] == (
        "approve_protocol_amendment",
        {"protocols": []},
        {"protocols": ["openvpn", "wireguard"], "requested": ["openvpn", "wireguard"],
         "amendment": asked.id},
    )  # fmt: skip
    assert services.pending_protocol_amendment(session, application_id=app.id) is None
    with pytest.raises(StateConflict, match="already approved"):
        services.decide_protocol_amendment(
            session, amendment_id=asked.id, approve=False, actor=world.regulator, now=clock.now()
        )


def test_a_refusal_keeps_the_old_list_and_a_new_request_replaces_a_pending_one(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = bank_registration(session, world, config, clock.now(), "192.0.2.0/24")
    first = services.amend_protocols(
        session, application_id=app.id, protocols=["ipsec"], actor=world.bank_applicant,
        now=clock.now(),
    )  # fmt: skip
    second = services.amend_protocols(
        session, application_id=app.id, protocols=["wireguard"], actor=world.bank_applicant,
        now=clock.now(),
    )  # fmt: skip
    with pytest.raises(NotFound):
        services.decide_protocol_amendment(
            session, amendment_id=first.id, approve=True, actor=world.regulator, now=clock.now()
        )
    kept = services.decide_protocol_amendment(
        session, amendment_id=second.id, approve=False, actor=world.regulator, now=clock.now()
    )
    assert kept.protocols == ()
    assert _protocols(session, config, clock, app.id) == {frozenset()}
    action, before, after = _actions(session, app.id)[-1]
    assert action == "refuse_protocol_amendment" and before == {"protocols": []}
    assert after == {"protocols": [], "requested": ["wireguard"], "amendment": second.id}


def test_who_may_ask_and_decide_and_what_is_refused(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    app = bank_registration(session, world, config, now, "192.0.2.0/24")
    with pytest.raises(ValidationFailed) as bad:
        services.amend_protocols(
            session, application_id=app.id, protocols=["telnet"], actor=world.bank_applicant,
            now=now,
        )  # fmt: skip
    assert [e.field for e in bad.value.errors] == ["protocols"]
    for outsider in (world.applicant, world.isp_user, world.regulator):
        with pytest.raises(Forbidden):
            services.amend_protocols(
                session, application_id=app.id, protocols=["ipsec"], actor=outsider, now=now
            )
    asked = services.amend_protocols(
        session, application_id=app.id, protocols=["ipsec"], actor=world.bank_applicant, now=now
    )
    for not_regulator in (world.bank_applicant, world.isp_user):
        with pytest.raises(Forbidden):
            services.decide_protocol_amendment(
                session, amendment_id=asked.id, approve=True, actor=not_regulator, now=now
            )
    with pytest.raises(NotFound):
        services.decide_protocol_amendment(
            session, amendment_id=asked.id + 1000, approve=True, actor=world.regulator, now=now
        )
    # Once revoked the registration is closed: the pending change can no longer be decided,
    # and a rejected or closed application takes no new request (peers' rules).
    act("revoke", session, application_id=app.id, actor=world.regulator, now=now,
        config=config, reason="misuse")  # fmt: skip
    with pytest.raises(StateConflict):
        services.decide_protocol_amendment(
            session, amendment_id=asked.id, approve=True, actor=world.regulator, now=now
        )
    with pytest.raises(StateConflict):
        services.amend_protocols(
            session, application_id=app.id, protocols=["ipsec"], actor=world.bank_applicant,
            now=now,
        )  # fmt: skip
    assert services.get_application(session, application_id=app.id).protocols == ()


def test_in_review_the_request_waits_for_the_regulator_as_peers_do(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    app = draft(session, world, config, now, [("2001:db8:77::/48", [])])
    asked = services.amend_protocols(
        session, application_id=app.id, protocols=["sstp"], actor=world.applicant, now=now
    )
    assert services.get_application(session, application_id=app.id).protocols == ()
    done = services.decide_protocol_amendment(
        session, amendment_id=asked.id, approve=True, actor=world.regulator, now=now
    )
    assert done.protocols == ("sstp",) and done.state == "draft"
