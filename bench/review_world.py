"""The reviewers' world the feed benchmarks start from: one organisation (a software house, so
its applications pass the sector body), one ISP, one sector body, a user for each review role
(password PASSWORD), and the steps that bring an application to the regulator."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from vpnreg.clock import Clock
from vpnreg.core.review import Role
from vpnreg.registry import services

PASSWORD = "bench-password-1"  # noqa: S105 - throwaway users in a temporary registry
#: Endorsed: its applications reach sector_endorsed before the regulator approves.
CATEGORY = "software_house"
ADMIN = "cli:admin"
#: What brings an application from draft to the regulator: (action, who).
TO_REGULATOR = (("submit", "applicant"), ("verify", "isp"), ("endorse", "sector"))


@dataclass(frozen=True)
class ReviewWorld:
    organisation_id: int
    isp_id: int
    #: By role name: applicant, isp, sector, regulator.
    users: dict[str, Any]

    def take_steps(
        self,
        session: Session,
        application_id: int,
        steps: tuple[tuple[str, str], ...],
        *,
        clock: Clock,
        config: services.ServiceConfig,
    ) -> None:
        for action, who in steps:
            step = services.StepRequest(
                action=action, application_id=application_id, actor=self.users[who]
            )
            services.take_step(session, step, now=clock.now(), config=config)


def review_world(
    session: Session, *, label: str, now: dt.datetime, config: services.ServiceConfig
) -> ReviewWorld:
    """Create the world, its names starting with `label`."""
    org = services.create_organisation(
        session, name=f"{label} Software", category=CATEGORY, actor=ADMIN, now=now, config=config
    )
    isp = services.create_isp(session, name=f"{label} ISP", actor=ADMIN, now=now)
    sector = services.create_sector_body(
        session, name=f"{label} Sector Body", categories=[CATEGORY], actor=ADMIN, now=now
    )
    users = {}
    for name, role, links in (
        ("applicant", Role.APPLICANT, {"organisation_id": org.id}),
        ("isp", Role.ISP, {"isp_id": isp.id}),
        ("sector", Role.SECTOR_BODY, {"sector_body_id": sector.id}),
        ("regulator", Role.REGULATOR, {}),
    ):
        users[name] = services.create_user(
            session, username=name, password=PASSWORD, role=role,
            actor=ADMIN, now=now, **links,
        )  # fmt: skip
    return ReviewWorld(org.id, isp.id, users)
