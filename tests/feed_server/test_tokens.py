"""API token services: created once, stored as a hash, authenticated, revoked (both backends)."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.registry.conftest import World
from vpnreg.clock import FrozenClock
from vpnreg.registry import services
from vpnreg.registry.errors import Forbidden, StateConflict, ValidationFailed
from vpnreg.registry.models import ApiToken, AuditLogRow


def test_create_stores_only_the_hash_and_authenticates_until_revoked(
    session: Session, clock: FrozenClock
) -> None:
    token, secret = services.create_token(
        session, name="gw-lahore-1", role="gateway", actor="cli:admin", now=clock.now()
    )
    assert secret.startswith("vpnreg_") and len(secret) > 40
    stored = session.scalars(select(ApiToken)).one()
    assert stored.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(
        session.execute(select(ApiToken.__table__)).all()  # type: ignore[arg-type]
    )
    found = services.authenticate_token(session, token=secret, now=clock.now())
    assert found is not None and (found.id, found.role) == (token.id, "gateway")
    assert found.last_used_at == clock.now()
    assert services.authenticate_token(session, token=secret + "x", now=clock.now()) is None
    assert services.authenticate_token(session, token="not-a-token", now=clock.now()) is None

    clock.advance(dt.timedelta(seconds=10))
    services.authenticate_token(session, token=secret, now=clock.now())
    assert found.last_used_at == clock.now() - dt.timedelta(seconds=10)  # not rewritten yet

    revoked = services.revoke_token(session, token_id=token.id, actor="cli:admin", now=clock.now())
    assert revoked.revoked_at == clock.now()
    assert services.authenticate_token(session, token=secret, now=clock.now()) is None
    with pytest.raises(StateConflict):
        services.revoke_token(session, token_id=token.id, actor="cli:admin", now=clock.now())
    actions = session.scalars(
        select(AuditLogRow.action).where(AuditLogRow.object_type == "api_token")
    ).all()
    assert list(actions) == ["token.create", "token.revoke"]
    assert [t.id for t in services.list_tokens(session, include_revoked=False)] == []
    assert [t.id for t in services.list_tokens(session)] == [token.id]


@pytest.mark.parametrize(
    ("name", "role", "fields"),
    [
        ("gw", "system", {"role"}),
        ("gw", "root", {"role"}),
        ("  ", "gateway", {"name"}),
        ("x" * 101, "nobody", {"name", "role"}),
    ],
    ids=["system-role", "unknown-role", "blank-name", "long-name-and-bad-role"],
)
def test_create_refuses_bad_names_and_roles(
    session: Session, clock: FrozenClock, name: str, role: str, fields: set[str]
) -> None:
    with pytest.raises(ValidationFailed) as err:
        services.create_token(session, name=name, role=role, actor="cli:admin", now=clock.now())
    assert {e.field for e in err.value.errors} == fields
    assert session.scalars(select(ApiToken)).all() == []


def test_only_admins_create_and_revoke(session: Session, world: World, clock: FrozenClock) -> None:
    with pytest.raises(Forbidden):
        services.create_token(
            session, name="gw", role="gateway", actor=world.regulator, now=clock.now()
        )
    token, _ = services.create_token(
        session, name="gw", role="gateway", actor="cli:admin", now=clock.now()
    )
    with pytest.raises(Forbidden):
        services.revoke_token(session, token_id=token.id, actor=world.isp_user, now=clock.now())
