"""What a page offers is what the server accepts (issue 15 item 5): for applications in every
state a person can act in, and for every user of every role in and out of scope, each offered
action succeeds through take_step (or amend_peers, amend_protocols, store_document) and each
action not offered is refused."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tests.registry.conftest import World
from tests.registry.flow import act, approved, draft, ready_for_decision
from vpnreg.clock import FrozenClock
from vpnreg.core.review import validity_end
from vpnreg.registry import services
from vpnreg.registry.errors import RegistryError
from vpnreg.registry.models import User
from vpnreg.registry.services.documents import store_document
from vpnreg.registry.views import ApplicationView

Build = Callable[[Session, World, services.ServiceConfig, dt.datetime], ApplicationView]
_PREFIXES = itertools.count(1)
_US = dt.timedelta(microseconds=1)


def _prefix() -> list[tuple[str, list[str]]]:
    """A prefix of its own for every application built, so approvals never overlap."""
    return [(f"2001:db8:{next(_PREFIXES):x}::/48", [])]


#: Every user the table is played by: each role, and users out of the application's scope.
USERS = (
    "applicant", "bank_applicant", "isp_user", "other_isp_user", "sector_user", "regulator",
    "regulator2",
)  # fmt: skip
#: What each action is given: what it needs (reasons, grounds), nothing else.
ARGUMENTS = {
    "reject": {"reason_code": "policy", "reason": "not eligible"},
    "revoke": {"reason": "misuse"},
    "appeal": {"text": "we are eligible"},
    "uphold": {"reason": "still not eligible"},
    "overturn": {"reason": "eligible after all"},
    "withdraw_attestation": {"reason": "line cancelled"},
}
ACTIONS = (
    *services.STEPS,
    services.AMEND_PEERS,
    services.AMEND_PROTOCOLS,
    services.UPLOAD_DOCUMENT,
)
PDF = b"%PDF-1.4\n% a lease\n%%EOF\n"


def _rejected_by(reviewer: str, *, bank: bool = False) -> Build:
    def build(s: Session, w: World, c: services.ServiceConfig, now: dt.datetime) -> ApplicationView:
        app = ready_for_decision(s, w, c, now, _prefix(), bank=bank)
        return act("reject", s, application_id=app.id, actor=getattr(w, reviewer), now=now,
                   config=c, **ARGUMENTS["reject"])  # fmt: skip

    return build


def _then(build: Build, action: str, who: str) -> Build:
    def then(s: Session, w: World, c: services.ServiceConfig, now: dt.datetime) -> ApplicationView:
        app = build(s, w, c, now)
        return act(action, s, application_id=app.id, actor=getattr(w, who), now=now, config=c,
                   **ARGUMENTS.get(action, {}))  # fmt: skip

    return then


def _draft(s: Session, w: World, c: services.ServiceConfig, now: dt.datetime) -> ApplicationView:
    return draft(s, w, c, now, _prefix())


def _bank_verified(
    s: Session, w: World, c: services.ServiceConfig, now: dt.datetime
) -> ApplicationView:
    return ready_for_decision(s, w, c, now, _prefix(), bank=True)


def _active(s: Session, w: World, c: services.ServiceConfig, now: dt.datetime) -> ApplicationView:
    return approved(s, w, c, now, _prefix())


def _endorsed(s: Session, w: World, c: services.ServiceConfig, now: dt.datetime) -> ApplicationView:
    return ready_for_decision(s, w, c, now, _prefix())


_submitted = _then(_draft, "submit", "applicant")
_rejected_by_regulator = _rejected_by("regulator")
STATES: dict[str, Build] = {
    "draft": _draft,
    "submitted": _submitted,
    "isp_verified-needs-endorsement": _then(_submitted, "verify", "isp_user"),
    "isp_verified-no-endorsement": _bank_verified,
    "sector_endorsed": _endorsed,
    "active": _active,
    "rejected": _rejected_by_regulator,
    "appealed-rejected-by-regulator": _then(_rejected_by_regulator, "appeal", "applicant"),
    "appealed-rejected-by-isp": _then(
        _then(_submitted, "reject", "isp_user"), "appeal", "applicant"
    ),
    "withdrawn": _then(_draft, "withdraw", "applicant"),
    "revoked": _then(_active, "revoke", "regulator"),
    "suspended": _then(_active, "withdraw_attestation", "isp_user"),
    "reattested": _then(_then(_active, "withdraw_attestation", "isp_user"), "reattest", "isp_user"),
}


def _take(
    session: Session, app: ApplicationView, action: str, user: User, config: services.ServiceConfig,
    now: dt.datetime, storage: Path,
) -> None:  # fmt: skip
    if action == services.UPLOAD_DOCUMENT:
        store_document(
            session, application_id=app.id, kind="supporting_document", filename="a.pdf",
            content=PDF, actor=user, now=now, storage_dir=storage,
        )  # fmt: skip
        return
    if action == services.AMEND_PEERS:
        services.amend_peers(
            session, application_id=app.id, prefix=app.prefixes[0].prefix,
            peers=["198.51.100.9/32"], actor=user, now=now, config=config,
        )  # fmt: skip
        return
    if action == services.AMEND_PROTOCOLS:
        services.amend_protocols(
            session, application_id=app.id, protocols=["wireguard"], actor=user, now=now
        )
        return
    act(action, session, application_id=app.id, actor=user, now=now, config=config,
        **ARGUMENTS.get(action, {}))  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("state", list(STATES), ids=list(STATES))
def test_offered_actions_succeed_and_the_others_are_refused(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock,
    state: str, tmp_path: Path,
) -> None:  # fmt: skip
    now = clock.now()
    build = STATES[state]
    app = build(session, world, config, now)
    offered = {
        who: services.available_actions(session, app, getattr(world, who), config=config)
        for who in USERS
    }
    # Not offered: refused, and the application is left as it was.
    for who in USERS:
        for action in ACTIONS:
            if action in offered[who]:
                continue
            with pytest.raises(RegistryError):
                _take(session, app, action, getattr(world, who), config, now, tmp_path)
            assert services.get_application(session, application_id=app.id).version == app.version
    # Offered: accepted, each on a fresh application in the same state.
    for who in USERS:
        for action in sorted(offered[who] & set(ACTIONS)):
            fresh = build(session, world, config, now)
            _take(session, fresh, action, getattr(world, who), config, now, tmp_path)
    assert any(offered.values()) or state in ("withdrawn", "revoked")


def test_the_reviewer_who_rejected_is_not_offered_the_appeal(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = STATES["appealed-rejected-by-regulator"](session, world, config, clock.now())
    mine = services.available_actions(session, app, world.regulator, config=config)
    other = services.available_actions(session, app, world.regulator2, config=config)
    assert not {"uphold", "overturn"} & mine
    assert {"uphold", "overturn"} <= other


def test_a_rejected_application_offers_appeal_and_withdraw_but_no_peer_change(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = STATES["rejected"](session, world, config, clock.now())
    offered = services.available_actions(session, app, world.applicant, config=config)
    assert {"appeal", "withdraw"} <= offered
    assert services.AMEND_PEERS not in offered
    assert services.AMEND_PROTOCOLS not in offered


@pytest.mark.parametrize("state", ["draft", "submitted", "sector_endorsed", "active"])
def test_the_protocol_list_may_be_amended_where_peers_may(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock, state: str
) -> None:
    app = STATES[state](session, world, config, clock.now())
    mine = services.available_actions(session, app, world.applicant, config=config)
    assert {services.AMEND_PEERS, services.AMEND_PROTOCOLS} <= mine
    for reviewer in (world.isp_user, world.regulator):
        offered = services.available_actions(session, app, reviewer, config=config)
        assert services.AMEND_PROTOCOLS not in offered


def test_attestation_steps_are_offered_to_the_attesting_isp_only(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    now = clock.now()
    active = STATES["active"](session, world, config, now)
    suspended = STATES["suspended"](session, world, config, now)

    def offered(app: ApplicationView, who: str) -> frozenset[str]:
        return services.available_actions(session, app, getattr(world, who), config=config)

    assert {"withdraw_attestation"} == offered(active, "isp_user")
    assert {"reattest"} == offered(suspended, "isp_user")
    assert {"revoke"} == offered(suspended, "regulator")
    for who in ("other_isp_user", "sector_user"):
        assert offered(active, who) == offered(suspended, who) == frozenset()
    # The applicant may neither renew nor amend a suspended registration.
    assert offered(suspended, "applicant") == frozenset()


def test_a_suspended_registration_past_its_end_offers_no_reattestation(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    app = STATES["suspended"](session, world, config, clock.now())
    assert app.valid_until is not None
    ended = validity_end(app.valid_until, config.tz)
    isp = world.isp_user
    before = services.available_actions(session, app, isp, config=config, now=ended - _US)
    after = services.available_actions(session, app, isp, config=config, now=ended)
    assert (before, after) == ({"reattest"}, frozenset())
    # ... because take_step refuses it then (the sweep has not expired it yet).
    with pytest.raises(RegistryError, match="validity has ended"):
        act("reattest", session, application_id=app.id, actor=isp, now=ended, config=config)
