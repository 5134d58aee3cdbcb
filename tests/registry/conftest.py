"""Fixtures for the registry tests: a service config and a small populated world."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from vpnreg.clock import FrozenClock
from vpnreg.core.ipspace import PrefixPolicy
from vpnreg.core.review import Role
from vpnreg.registry import services
from vpnreg.registry.models import User
from vpnreg.registry.services.passwords import hash_password

KARACHI = ZoneInfo("Asia/Karachi")
PASSWORD = "correct horse battery"
#: Hashed once: argon2id is slow on purpose, and most tests only need users to exist.
PASSWORD_HASH = hash_password(PASSWORD)


def make_config() -> services.ServiceConfig:
    return services.ServiceConfig(
        tz=KARACHI,
        prefix_policy=PrefixPolicy(allow_documentation=True),
        endorsed_categories=frozenset({"software_house", "call_centre", "freelancer"}),
        id_hash_key=b"test-id-hash-key",
    )


@pytest.fixture
def config() -> services.ServiceConfig:
    return make_config()


@dataclass
class World:
    """Two organisations (one needing endorsement), two ISPs, a sector body and their users."""

    soft_org: int
    bank_org: int
    isp: int
    other_isp: int
    sector: int
    applicant: User
    bank_applicant: User
    isp_user: User
    other_isp_user: User
    sector_user: User
    regulator: User
    regulator2: User


def add_user(session: Session, username: str, role: Role, now: dt.datetime, **links: int) -> User:
    user = User(
        username=username,
        password_hash=PASSWORD_HASH,
        role=role.value,
        active=True,
        created_at=now,
        **links,
    )
    session.add(user)
    session.commit()
    return user


def build_world(session: Session, now: dt.datetime, config: services.ServiceConfig) -> World:
    admin = "cli:admin"
    soft = services.create_organisation(
        session,
        name="Lahore Code Works",
        category="software_house",
        actor=admin,
        now=now,
        config=config,
        registration_number="0012345",
    )
    bank = services.create_organisation(
        session, name="Indus Bank", category="bank", actor=admin, now=now, config=config
    )
    isp = services.create_isp(session, name="Nayatel", actor=admin, now=now)
    other = services.create_isp(session, name="PTCL", actor=admin, now=now)
    sector = services.create_sector_body(
        session, name="P@SHA", categories=["software_house", "call_centre"], actor=admin, now=now
    )
    return World(
        soft_org=soft.id,
        bank_org=bank.id,
        isp=isp.id,
        other_isp=other.id,
        sector=sector.id,
        applicant=add_user(session, "ali", Role.APPLICANT, now, organisation_id=soft.id),
        bank_applicant=add_user(session, "bina", Role.APPLICANT, now, organisation_id=bank.id),
        isp_user=add_user(session, "noc", Role.ISP, now, isp_id=isp.id),
        other_isp_user=add_user(session, "ptcl-noc", Role.ISP, now, isp_id=other.id),
        sector_user=add_user(session, "pasha", Role.SECTOR_BODY, now, sector_body_id=sector.id),
        regulator=add_user(session, "reg1", Role.REGULATOR, now),
        regulator2=add_user(session, "reg2", Role.REGULATOR, now),
    )


@pytest.fixture
def world(session: Session, clock: FrozenClock, config: services.ServiceConfig) -> World:
    return build_world(session, clock.now(), config)
