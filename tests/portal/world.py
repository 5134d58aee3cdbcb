"""A small registry for portal tests: a migrated SQLite file, one user per role, set up through
the registry services (as the CLI would), never by writing rows by hand."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from vpnreg.core.review import Role
from vpnreg.registry import db, services
from vpnreg.settings import Settings

PASSWORD = "correct horse battery"
SECRET_KEY = "portal-test-secret-key-" + "x" * 24


@dataclass(frozen=True)
class PortalWorld:
    """What a test needs to know about the registry it runs against."""

    url: str
    settings: Settings
    org_id: int
    bank_org_id: int
    isp_id: int
    isp_name: str
    sector_id: int


USERS = {
    "admin": Role.ADMIN,
    "ali": Role.APPLICANT,
    "bina": Role.APPLICANT,
    "noc": Role.ISP,
    "pasha": Role.SECTOR_BODY,
    "reg1": Role.REGULATOR,
    "reg2": Role.REGULATOR,
}


def settings_for(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'registry.db'}",
        data_dir=tmp_path / "data",
        allow_documentation_prefixes=True,
        secret_key=SECRET_KEY,
        endorsed_categories=("software_house", "call_centre", "freelancer"),
        id_hash_key="portal-test-id-hash-key",
    )


def build_world(tmp_path: Path, now: dt.datetime) -> PortalWorld:
    """Migrate a fresh registry under `tmp_path` and fill it with the directory and users."""
    settings = settings_for(tmp_path)
    db.upgrade(settings.database_url)
    config = services.ServiceConfig.from_settings(settings)
    engine = db.make_engine(settings.database_url)
    admin = "cli:admin"
    try:
        with db.make_session_factory(engine)() as session:
            org = services.create_organisation(
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
            services.create_isp(session, name="PTCL", actor=admin, now=now)
            sector = services.create_sector_body(
                session,
                name="P@SHA",
                categories=["software_house", "call_centre"],
                actor=admin,
                now=now,
            )
            links: dict[str, dict[str, int]] = {
                "ali": {"organisation_id": org.id},
                "bina": {"organisation_id": bank.id},
                "noc": {"isp_id": isp.id},
                "pasha": {"sector_body_id": sector.id},
            }
            for username, role in USERS.items():
                services.create_user(
                    session,
                    username=username,
                    password=PASSWORD,
                    role=role,
                    actor=admin,
                    now=now,
                    **links.get(username, {}),
                )
            return PortalWorld(
                url=settings.database_url,
                settings=settings,
                org_id=org.id,
                bank_org_id=bank.id,
                isp_id=isp.id,
                isp_name=isp.name,
                sector_id=sector.id,
            )
    finally:
        engine.dispose()
