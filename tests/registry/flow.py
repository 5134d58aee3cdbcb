"""Walking an application through the review steps, for tests that need one at a given stage."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from tests.registry.conftest import World
from vpnreg.registry import services
from vpnreg.registry.models import User
from vpnreg.registry.views import ApplicationView


def act(
    action: str,
    session: Session,
    *,
    application_id: int,
    actor: User,
    now: dt.datetime,
    config: services.ServiceConfig,
    expected_version: int | None = None,
    **arguments: str,
) -> ApplicationView:
    """One step through the registry's one entry (services.take_step), keyword style."""
    step = services.StepRequest(
        action=action,
        application_id=application_id,
        actor=actor,
        expected_version=expected_version,
        arguments=arguments,
    )
    return services.take_step(session, step, now=now, config=config)


def draft(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    now: dt.datetime,
    prefixes: list[tuple[str, list[str]]],
    *,
    bank: bool = False,
    idempotency_key: str | None = None,
    subscriber_id: str | None = None,
    protocols: tuple[str, ...] = (),
) -> ApplicationView:
    return services.create_application(
        session,
        organisation_id=world.bank_org if bank else world.soft_org,
        isp_id=world.isp,
        prefixes=prefixes,
        actor=world.bank_applicant if bank else world.applicant,
        now=now,
        config=config,
        idempotency_key=idempotency_key,
        subscriber_id=subscriber_id,
        protocols=protocols,
    )


def ready_for_decision(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    now: dt.datetime,
    prefixes: list[tuple[str, list[str]]],
    *,
    bank: bool = False,
    subscriber_id: str | None = None,
    protocols: tuple[str, ...] = (),
) -> ApplicationView:
    """Submitted, verified and (for the software house) endorsed."""
    app = draft(
        session,
        world,
        config,
        now,
        prefixes,
        bank=bank,
        subscriber_id=subscriber_id,
        protocols=protocols,
    )
    applicant = world.bank_applicant if bank else world.applicant
    kw = {"application_id": app.id, "now": now, "config": config}
    app = act("submit", session, actor=applicant, **kw)  # type: ignore[arg-type]
    app = act("verify", session, actor=world.isp_user, **kw)  # type: ignore[arg-type]
    if not bank:
        app = act("endorse", session, actor=world.sector_user, **kw)  # type: ignore[arg-type]
    return app


def approved(
    session: Session,
    world: World,
    config: services.ServiceConfig,
    now: dt.datetime,
    prefixes: list[tuple[str, list[str]]],
    *,
    bank: bool = False,
    subscriber_id: str | None = None,
    protocols: tuple[str, ...] = (),
) -> ApplicationView:
    app = ready_for_decision(
        session,
        world,
        config,
        now,
        prefixes,
        bank=bank,
        subscriber_id=subscriber_id,
        protocols=protocols,
    )
    return act(
        "approve", session, application_id=app.id, actor=world.regulator, now=now, config=config
    )
