"""/api/v1/organisations and /api/v1/isps: the directory, as each caller may see it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from vpnreg.registry import services
from vpnreg.registry.services import queries
from vpnreg.web.auth import AppClock, Config, CurrentUser, DbSession, OptionalUser
from vpnreg.web.bounds import Offset, PathId
from vpnreg.web.policy import ADMIN, PEOPLE, READERS, REGULATOR, allow, only
from vpnreg.web.schemas import ISPPublic, OrganisationCreate, OrganisationPublic

router = APIRouter(tags=["directory"])


@router.get(
    "/organisations",
    dependencies=[allow(READERS)],
    response_model=list[OrganisationPublic],
    summary="Organisations (an applicant sees its own)",
)
def list_organisations(
    db: DbSession,
    viewer: OptionalUser,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = queries.MAX_PAGE,
    offset: Offset = 0,
) -> list[OrganisationPublic]:
    """One page (by name); ask again with a larger `offset` for the next."""
    page = queries.list_organisations(db, viewer=viewer, limit=limit, offset=offset)
    return [OrganisationPublic.of(o) for o in page]


@router.post(
    "/organisations",
    dependencies=[allow(only(ADMIN, REGULATOR))],
    status_code=201,
    response_model=OrganisationPublic,
    summary="Register an organisation",
)
def create_organisation(
    body: OrganisationCreate, db: DbSession, user: CurrentUser, clock: AppClock, config: Config
) -> OrganisationPublic:
    org = services.create_organisation(
        db,
        name=body.name,
        category=body.category,
        actor=user,
        now=clock.now(),
        config=config,
        registration_number=body.registration_number,
        national_id=body.national_id,
    )
    return OrganisationPublic.of(org)


@router.get(
    "/organisations/{organisation_id}",
    dependencies=[allow(READERS)],
    response_model=OrganisationPublic,
    summary="One organisation",
)
def read_organisation(
    organisation_id: PathId, db: DbSession, viewer: OptionalUser
) -> OrganisationPublic:
    return OrganisationPublic.of(
        queries.get_organisation(db, organisation_id=organisation_id, viewer=viewer)
    )


@router.get(
    "/isps",
    dependencies=[allow(PEOPLE)],
    response_model=list[ISPPublic],
    summary="ISPs an application may name",
)
def list_isps(db: DbSession) -> list[ISPPublic]:
    return [ISPPublic.of(i) for i in queries.list_isps(db)]
