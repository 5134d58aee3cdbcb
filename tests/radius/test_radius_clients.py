"""services.set_radius_client: registering and updating an ISP's accounting client, audited
without its secret; on SQLite and PostgreSQL (the shared `session` fixture)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.registry.conftest import World, build_world, make_config
from vpnreg.clock import FrozenClock
from vpnreg.registry import services
from vpnreg.registry.errors import Forbidden, NotFound, ValidationFailed
from vpnreg.registry.models import AuditLogRow, RadiusClient
from vpnreg.registry.services.radius_clients import radius_clients


@pytest.fixture
def world(session: Session, clock: FrozenClock) -> World:
    return build_world(session, clock.now(), make_config())


def _audit(session: Session) -> list[AuditLogRow]:
    return list(
        session.scalars(
            select(AuditLogRow)
            .where(AuditLogRow.object_type == "radius_client")
            .order_by(AuditLogRow.seq)
        )
    )


def test_set_then_update_the_client_at_an_address(
    session: Session, world: World, clock: FrozenClock
) -> None:
    made = services.set_radius_client(
        session,
        isp_id=world.isp,
        address="192.0.2.10",
        secret="first-secret-123",
        actor="cli:admin",
        now=clock.now(),
    )
    assert (made.address, made.subscriber_attribute, made.ports_attribute) == (
        "192.0.2.10",
        "User-Name",
        None,
    )
    updated = services.set_radius_client(
        session,
        isp_id=world.isp,
        address="::ffff:192.0.2.10",  # the same client, as a dual-stack socket names it
        secret="second-secret-456",
        subscriber_attribute="Class",
        ports_attribute="VPNReg-Port-Range",
        actor=world.regulator,
        now=clock.now(),
    )
    assert updated.secret == "second-secret-456"
    rows = session.scalars(select(RadiusClient)).all()
    assert [(r.address, r.subscriber_attribute, r.ports_attribute) for r in rows] == [
        ("192.0.2.10", "Class", "VPNReg-Port-Range")
    ]
    assert radius_clients(session)["192.0.2.10"].isp_name == "Nayatel"
    events = _audit(session)
    assert [(e.action, e.actor) for e in events] == [
        ("radius_client.create", "cli:admin"),
        ("radius_client.update", "reg1"),
    ]
    recorded = " ".join(json.dumps([e.before, e.after]) for e in events)
    assert "secret-123" not in recorded and "secret-456" not in recorded
    assert events[1].after["secret_changed"] is True
    assert events[1].before["subscriber_attribute"] == "User-Name"


@pytest.mark.parametrize(
    ("address", "secret", "subscriber", "field"),
    [
        ("bng-1", "s3cret", "User-Name", "address"),
        ("192.0.2.10", "", "User-Name", "secret"),
        ("192.0.2.10", "has space", "User-Name", "secret"),
        ("192.0.2.10", "x" * 257, "User-Name", "secret"),
        ("192.0.2.10", "s3cret", "User Name", "subscriber_attribute"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(
    session: Session, world: World, clock: FrozenClock, address: str, secret: str,
    subscriber: str, field: str,
) -> None:  # fmt: skip
    with pytest.raises(ValidationFailed) as refused:
        services.set_radius_client(
            session,
            isp_id=world.isp,
            address=address,
            secret=secret,
            subscriber_attribute=subscriber,
            actor="cli:admin",
            now=clock.now(),
        )
    assert [e.field for e in refused.value.errors] == [field]
    assert session.scalars(select(RadiusClient)).all() == []
    assert _audit(session) == []


def test_another_isps_address_an_unknown_isp_and_non_admins_are_refused(
    session: Session, world: World, clock: FrozenClock
) -> None:
    kw = {"address": "192.0.2.10", "secret": "s3cret-s3cret", "now": clock.now()}
    services.set_radius_client(session, isp_id=world.isp, actor="cli:admin", **kw)  # type: ignore[arg-type]
    with pytest.raises(ValidationFailed, match="RADIUS client of Nayatel, not of PTCL"):
        services.set_radius_client(session, isp_id=world.other_isp, actor="cli:admin", **kw)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        services.set_radius_client(session, isp_id=9999, actor="cli:admin", **kw)  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        services.set_radius_client(session, isp_id=world.isp, actor=world.isp_user, **kw)  # type: ignore[arg-type]
    assert len(_audit(session)) == 1
