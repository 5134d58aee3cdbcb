"""/api/v1: prefixes, lookup, the public per-address answer, audit events, stats, and `me`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from vpnreg.registry.errors import ValidationFailed
from vpnreg.registry.services import queries
from vpnreg.registry.services.stats import registry_stats
from vpnreg.web.api.rdap import (
    MAX_ADDRESS,
    RDAP_MEDIA_TYPE,
    RdapResponse,
    rdap_answer,
    rdap_error,
)
from vpnreg.web.auth import AppClock, Config, CurrentCaller, DbSession, OptionalUser, csrf_for
from vpnreg.web.bounds import Offset
from vpnreg.web.lookup import answer_lookup
from vpnreg.web.policy import (
    AUDITOR,
    EVERYONE,
    OVERSIGHT,
    READERS,
    allow,
    only,
)
from vpnreg.web.problems import Problem
from vpnreg.web.reads import ReadDb
from vpnreg.web.schemas import (
    KEYWORD,
    TEXT,
    AuditEventPublic,
    AuditPage,
    LookupPublic,
    MePublic,
    PrefixPage,
    PrefixRowPublic,
    StatsPublic,
)

router = APIRouter(tags=["records"])


@router.get(
    "/me",
    dependencies=[allow(EVERYONE)],
    response_model=MePublic,
    summary="Who the API thinks is calling",
)
def me(request: Request, caller: CurrentCaller) -> MePublic:
    user = caller.user
    return MePublic(
        name=caller.name,
        role=caller.role,
        via=caller.via,
        organisation_id=user.organisation_id if user else None,
        isp_id=user.isp_id if user else None,
        sector_body_id=user.sector_body_id if user else None,
        csrf_token=csrf_for(request) if caller.via == "session" else None,
    )


@router.get(
    "/prefixes",
    dependencies=[allow(READERS)],
    response_model=PrefixPage,
    summary="Prefixes the caller may see",
)
def list_prefixes(
    db: DbSession,
    viewer: OptionalUser,
    state: Annotated[
        list[Annotated[str, Field(max_length=32, pattern=KEYWORD)]] | None, Query()
    ] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 50,
    offset: Offset = 0,
) -> PrefixPage:
    page = queries.list_prefixes(db, viewer=viewer, states=state or (), limit=limit, offset=offset)
    return PrefixPage(
        items=[
            PrefixRowPublic(
                prefix=r.prefix,
                application_id=r.application_id,
                tracking_number=r.tracking_number,
                state=r.state,
                category=r.category,
                valid_until=r.valid_until,
                peers=list(r.peers),
            )
            for r in page.items
        ],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


#: The domestic endpoint's port (an address bound with a port range holds only those ports).
PortQuery = Annotated[
    int | None,
    Query(
        ge=0,
        le=65535,
        description="The domestic endpoint's port: an address an ISP bound with a port range "
        "(CGNAT) is registered only for ports inside it",
    ),
]
#: Ask about another moment than now.
AtQuery = Annotated[
    dt.datetime | None,
    Query(description="RFC 3339 time with offset to ask about (default: now)"),
]


@router.get(
    "/lookup",
    dependencies=[allow(OVERSIGHT)],
    response_model=LookupPublic,
    summary="Is an address registered now, and by which registration",
)
async def lookup(
    request: Request,
    db: DbSession,
    clock: AppClock,
    config: Config,
    ip: Annotated[str, Query(min_length=1, max_length=64)],
    port: PortQuery = None,
    at: AtQuery = None,
) -> LookupPublic:
    result = await answer_lookup(
        request, db, address=ip, port=port, at=_moment(at), clock=clock, config=config
    )
    return LookupPublic.of(result)


def _moment(at: dt.datetime | None) -> dt.datetime | None:
    """`at` in UTC (None: now); 422 without an offset."""
    if at is None:
        return None
    if at.tzinfo is None or at.utcoffset() is None:
        raise Problem(
            422,
            "validation-failed",
            "at: give the time zone offset (e.g. 2026-01-15T09:00:00Z)",
            extra={"errors": [{"field": "at", "code": "invalid", "message": "needs an offset"}]},
        )
    return at.astimezone(dt.UTC)


def _rdap(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {RDAP_MEDIA_TYPE: {"schema": {"type": "object"}}},
    }


@router.get(
    "/ip/{address}",
    dependencies=[allow(EVERYONE)],
    summary="Public: is this address registered (an RDAP-flavoured ip network object)",
    response_class=RdapResponse,
    responses={
        200: _rdap("The registered network covering the address"),
        400: _rdap("Not an IP address"),
        404: _rdap("No registration covers the address (registered: false)"),
    },
)
async def ip_network(
    request: Request,
    address: Annotated[
        str,
        Path(
            max_length=MAX_ADDRESS,
            description="An IPv4 or IPv6 address (anything else answers 400)",
            json_schema_extra={"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
        ),
    ],
    db: ReadDb,
    clock: AppClock,
    config: Config,
    port: PortQuery = None,
    at: AtQuery = None,
) -> JSONResponse:
    """RFC 9083 section 5.4, reduced to what the public may see: the network, its category and
    validity, and for an address an ISP bound to a subscriber-bound registration the binding's
    port range and end. It names neither the organisation nor the subscriber."""
    try:
        result = await answer_lookup(
            request, db, address=address, port=port, at=_moment(at), clock=clock, config=config
        )
    except ValidationFailed as err:
        return rdap_error(400, "Not an IP address", err.errors[0].message, registered=False)
    return rdap_answer(result)


@router.get(
    "/audit/events",
    dependencies=[allow(only(AUDITOR))],
    response_model=AuditPage,
    summary="The audit log (auditor only)",
)
def audit_events(
    db: DbSession,
    object_type: Annotated[str | None, Query(max_length=64, pattern=TEXT)] = None,
    object_id: Annotated[str | None, Query(max_length=64, pattern=TEXT)] = None,
    actor: Annotated[str | None, Query(max_length=128, pattern=TEXT)] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 50,
    offset: Offset = 0,
) -> AuditPage:
    page = queries.list_audit_events(
        db, object_type=object_type, object_id=object_id, actor=actor, limit=limit, offset=offset
    )
    return AuditPage(
        items=[AuditEventPublic(**vars(e)) for e in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/stats",
    dependencies=[allow(OVERSIGHT)],
    response_model=StatsPublic,
    summary="Counts by state and category",
)
def stats(db: DbSession) -> StatsPublic:
    return StatsPublic(**vars(registry_stats(db)))
