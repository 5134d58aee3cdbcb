"""API token services: created once, stored as a hash, authenticated, revoked (both backends);
tokens bound to a user act with the user's current role and die with it; expiry."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tests.registry.conftest import World, add_user
from vpnreg.clock import FrozenClock
from vpnreg.core.review import Role
from vpnreg.registry import services
from vpnreg.registry.errors import Forbidden, NotFound, StateConflict, ValidationFailed
from vpnreg.registry.models import ApiToken, AuditLogRow, User
from vpnreg.registry.services.tokens import effective_role


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


# --- tokens bound to a user ------------------------------------------------------------------


def test_a_user_bound_token_acts_as_its_user_until_revoked(
    session: Session, world: World, clock: FrozenClock
) -> None:
    token, secret = services.create_token(
        session, name="noc-robot", user_id=world.isp_user.id, actor="cli:admin", now=clock.now()
    )
    assert (token.user_id, token.role, token.expires_at) == (world.isp_user.id, "isp", None)
    found = services.authenticate_token(session, token=secret, now=clock.now())
    assert found is not None and found.user is not None
    assert (found.id, found.user.username, effective_role(found)) == (token.id, "noc", "isp")
    created = session.scalars(select(AuditLogRow).where(AuditLogRow.action == "token.create")).one()
    assert created.actor == "cli:admin"
    assert created.after is not None and created.after["user_id"] == world.isp_user.id

    services.revoke_token(session, token_id=token.id, actor="cli:admin", now=clock.now())
    assert services.authenticate_token(session, token=secret, now=clock.now()) is None


def test_a_user_bound_token_follows_the_users_current_role_and_state(
    session: Session, world: World, clock: FrozenClock
) -> None:
    _, secret = services.create_token(
        session, name="reg-robot", user_id=world.regulator.id, actor="cli:admin", now=clock.now()
    )
    services.set_user_role(
        session, user_id=world.regulator.id, role="auditor", actor="cli:admin", now=clock.now()
    )
    found = services.authenticate_token(session, token=secret, now=clock.now())
    assert found is not None
    assert (found.role, effective_role(found)) == ("regulator", "auditor")  # stored vs acting

    services.set_user_active(
        session, user_id=world.regulator.id, active=False, actor="cli:admin", now=clock.now()
    )
    assert services.authenticate_token(session, token=secret, now=clock.now()) is None
    services.set_user_active(
        session, user_id=world.regulator.id, active=True, actor="cli:admin", now=clock.now()
    )
    assert services.authenticate_token(session, token=secret, now=clock.now()) is not None


def test_a_role_token_keeps_its_own_role(session: Session, clock: FrozenClock) -> None:
    _, secret = services.create_token(
        session, name="gw", role="gateway", actor="cli:admin", now=clock.now()
    )
    found = services.authenticate_token(session, token=secret, now=clock.now())
    assert found is not None and found.user is None
    assert effective_role(found) == "gateway"


@pytest.mark.parametrize(
    ("role", "with_user", "field", "code"),
    [
        ("gateway", True, "role", "role_or_user"),
        (None, False, "role", "role_or_user"),
    ],
    ids=["role-and-user", "neither"],
)
def test_a_token_has_exactly_one_of_role_and_user(
    session: Session,
    world: World,
    clock: FrozenClock,
    role: str | None,
    with_user: bool,
    field: str,
    code: str,
) -> None:
    with pytest.raises(ValidationFailed) as err:
        services.create_token(
            session,
            name="x",
            role=role,
            user_id=world.isp_user.id if with_user else None,
            actor="cli:admin",
            now=clock.now(),
        )
    assert [(e.field, e.code) for e in err.value.errors] == [(field, code)]
    assert session.scalars(select(ApiToken)).all() == []


def test_an_unknown_or_disabled_user_gets_no_token(
    session: Session, world: World, clock: FrozenClock
) -> None:
    with pytest.raises(NotFound):
        services.create_token(session, name="x", user_id=987654, actor="cli:admin", now=clock.now())
    services.set_user_active(
        session, user_id=world.applicant.id, active=False, actor="cli:admin", now=clock.now()
    )
    with pytest.raises(ValidationFailed) as err:
        services.create_token(
            session, name="x", user_id=world.applicant.id, actor="cli:admin", now=clock.now()
        )
    assert [(e.field, e.code) for e in err.value.errors] == [("user", "user_disabled")]
    assert session.scalars(select(ApiToken)).all() == []


def test_deleting_the_user_deletes_its_tokens(
    session: Session, world: World, clock: FrozenClock
) -> None:
    user = add_user(session, "temp", Role.ISP, clock.now(), isp_id=world.isp)
    token, secret = services.create_token(
        session, name="temp-robot", user_id=user.id, actor="cli:admin", now=clock.now()
    )
    session.execute(delete(User).where(User.id == user.id))
    session.commit()
    session.expunge_all()
    assert session.get(ApiToken, token.id) is None
    assert services.authenticate_token(session, token=secret, now=clock.now()) is None


def test_a_token_is_refused_from_its_expiry_on(
    session: Session, world: World, clock: FrozenClock
) -> None:
    expires = clock.now() + dt.timedelta(days=30)
    _, role_secret = services.create_token(
        session, name="gw", role="gateway", expires_at=expires, actor="cli:admin", now=clock.now()
    )
    _, user_secret = services.create_token(
        session,
        name="ali-ci",
        user_id=world.applicant.id,
        expires_at=expires,
        actor="cli:admin",
        now=clock.now(),
    )
    clock.set(expires - dt.timedelta(seconds=1))
    for secret in (role_secret, user_secret):
        assert services.authenticate_token(session, token=secret, now=clock.now()) is not None
    clock.set(expires)
    for secret in (role_secret, user_secret):
        assert services.authenticate_token(session, token=secret, now=clock.now()) is None
    with pytest.raises(ValidationFailed) as err:
        services.create_token(
            session, name="late", role="gateway", expires_at=expires, actor="cli:admin",
            now=clock.now(),
        )  # fmt: skip
    assert [e.code for e in err.value.errors] == ["in_the_past"]
