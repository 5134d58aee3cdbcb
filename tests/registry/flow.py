"""Walking an application through the review steps, for tests that need one at a given stage."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from tests.registry.conftest import World
from vpnreg.registry import services
from vpnreg.registry.models import Application


def draft(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    now: dt.datetime,
    prefixes: list[tuple[str, list[str]]],
    *,
    bank: bool = False,
) -> Application:
    return services.create_application(
        session,
        organisation_id=world.bank_org if bank else world.soft_org,
        isp_id=world.isp,
        prefixes=prefixes,
        actor=world.bank_applicant if bank else world.applicant,
        now=now,
        config=config,
    )


def ready_for_decision(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    now: dt.datetime,
    prefixes: list[tuple[str, list[str]]],
    *,
    bank: bool = False,
) -> Application:
    """Submitted, verified and (for the software house) endorsed."""
    app = draft(session, world, config, now, prefixes, bank=bank)
    applicant = world.bank_applicant if bank else world.applicant
    kw = {"application_id": app.id, "now": now, "config": config}
    services.submit(session, actor=applicant, **kw)  # type: ignore[arg-type]
    services.verify(session, actor=world.isp_user, **kw)  # type: ignore[arg-type]
    if not bank:
        services.endorse(session, actor=world.sector_user, **kw)  # type: ignore[arg-type]
    return app


def approved(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    now: dt.datetime,
    prefixes: list[tuple[str, list[str]]],
    *,
    bank: bool = False,
) -> Application:
    app = ready_for_decision(session, world, config, now, prefixes, bank=bank)
    return services.approve(
        session, application_id=app.id, actor=world.regulator, now=now, config=config
    )
