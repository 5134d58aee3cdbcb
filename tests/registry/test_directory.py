"""Organisations, users and logging in."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.registry.conftest import World
from vpnreg.clock import FrozenClock
from vpnreg.core.review import Role
from vpnreg.registry import services
from vpnreg.registry.errors import Forbidden, ValidationFailed
from vpnreg.registry.models import Organisation, User


def test_individual_national_id_is_stored_only_as_keyed_hash(
    session: Session, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    org = services.create_organisation(
        session,
        name="Sana Freelance",
        category="freelancer",
        actor="cli:admin",
        now=clock.now(),
        config=config,
        national_id="35202-1234567-8",
    )
    expected = hmac.new(config.id_hash_key, b"3520212345678", hashlib.sha256).hexdigest()
    stored = session.get(Organisation, org.id)
    assert stored is not None
    assert (stored.national_id_hash, org.national_id_last4) == (expected, "5678")
    dump = " ".join(
        str(v) for row in session.execute(text("SELECT * FROM organisations")) for v in row
    ) + " ".join(str(v) for row in session.execute(text("SELECT * FROM audit_log")) for v in row)
    assert "3520212345678" not in dump
    assert "1234567" not in dump


def test_duplicate_and_bad_category_refused(
    session: Session, world: World, config: services.ServiceConfig, clock: FrozenClock
) -> None:
    with pytest.raises(ValidationFailed, match="already registered"):
        services.create_isp(session, name="Nayatel", actor="cli:admin", now=clock.now())
    with pytest.raises(ValidationFailed) as info:
        services.create_organisation(
            session,
            name="X",
            category="casino",
            actor="cli:admin",
            now=clock.now(),
            config=config,
        )
    assert info.value.errors[0].code == "unknown_category"


def test_create_user_role_links_and_authenticate(
    session: Session, world: World, clock: FrozenClock
) -> None:
    with pytest.raises(ValidationFailed) as info:
        services.create_user(
            session,
            username="noc2",
            password="long enough pw",
            role=Role.ISP,
            actor="cli:admin",
            now=clock.now(),
            organisation_id=world.soft_org,
        )
    assert {(e.field, e.code) for e in info.value.errors} == {
        ("isp_id", "required"),
        ("organisation_id", "not_allowed"),
    }
    with pytest.raises(Forbidden):
        services.create_user(
            session,
            username="x",
            password="long enough pw",
            role=Role.ADMIN,
            actor=world.applicant,
            now=clock.now(),
        )
    user = services.create_user(
        session,
        username="noc2",
        password="long enough pw",
        role=Role.ISP,
        actor="cli:admin",
        now=clock.now(),
        isp_id=world.isp,
    )
    stored = session.scalar(select(User.password_hash).where(User.id == user.id))
    assert stored is not None and stored.startswith("$argon2id$")
    assert services.authenticate(session, username="noc2", password="long enough pw") == user
    assert services.authenticate(session, username="noc2", password="wrong password") is None
    assert services.authenticate(session, username="nobody", password="x") is None


@pytest.mark.parametrize("role", ["system", "gateway", "nobody"])
def test_a_login_has_a_person_role_only(
    session: Session, world: World, clock: FrozenClock, role: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        services.create_user(
            session,
            username=f"robot-{role}",
            password="long enough password",
            role=role,
            actor="cli:admin",
            now=clock.now(),
        )
    assert caught.value.errors[0].field == "role"
    with pytest.raises(ValidationFailed):
        services.set_user_role(
            session, user_id=world.regulator.id, role=role, actor="cli:admin", now=clock.now()
        )


@pytest.mark.parametrize("username", ["web:signup", "cli:admin", "a b", "ali\n", "-lead", "é"])
def test_usernames_use_a_safe_alphabet(
    session: Session, world: World, clock: FrozenClock, username: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        services.create_user(
            session,
            username=username,
            password="long enough password",
            role="regulator",
            actor="cli:admin",
            now=clock.now(),
        )
    assert [e.field for e in caught.value.errors] == ["username"]
