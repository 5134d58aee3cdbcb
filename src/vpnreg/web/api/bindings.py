"""/api/v1/isps/{isp_id}/bindings: an ISP reports which subscriber holds which address.

The ISP's own users (in practice a user-bound API token of its automation) send up to
MAX_EVENTS_PER_REPORT start / interim / stop events at once. The answer is 200 with one result
per event, in the events' order: stored (also when it was stored before: the report is
idempotent per subscriber id and session id) or refused with the reason. A caller who is not
that ISP's gets 403 and nothing is stored; a malformed body gets 422, and nothing is stored.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from vpnreg.core.bindings import MAX_EVENTS_PER_REPORT, BindingEvent
from vpnreg.registry.services.bindings import report_events
from vpnreg.web.auth import AppClock, Config, CurrentUser, DbSession
from vpnreg.web.bounds import PathId
from vpnreg.web.policy import ISP, allow, only

router = APIRouter(tags=["bindings"])

#: Long enough for any valid field, short enough that a hostile one stays small; what a field
#: may hold is the core's check (a refused event names it).
_FIELD_CHARS = 256


class BindingEventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: Literal["start", "interim", "stop"]
    subscriber_id: str = Field(
        max_length=_FIELD_CHARS,
        description="The ISP's account id of the line (1 to 64 letters, digits or ._:@/+-)",
        examples=["SUB-123"],
    )
    session_id: str = Field(
        max_length=_FIELD_CHARS,
        description="The session (e.g. RADIUS Acct-Session-Id): 1 to 128 printable characters",
    )
    address: str = Field(
        max_length=_FIELD_CHARS,
        description="The public address or prefix bound to the subscriber",
        examples=["203.0.113.7", "2001:db8:5::/56"],
    )
    ports: tuple[int, int] | None = Field(
        default=None,
        description="The port block [lo, hi] of a shared (CGNAT) address; left out: all ports",
    )
    until: dt.datetime | None = Field(
        default=None,
        description="RFC 3339 end of the binding: at most, and by default, 24 hours ahead",
    )


class BindingReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[BindingEventIn] = Field(max_length=MAX_EVENTS_PER_REPORT)


class EventResultPublic(BaseModel):
    status: Literal["stored", "refused"]
    error: str | None = Field(default=None, description="Why the event was refused")


class BindingResults(BaseModel):
    results: list[EventResultPublic]


@router.put(
    "/isps/{isp_id}/bindings",
    dependencies=[allow(only(ISP))],
    response_model=BindingResults,
    response_model_exclude_none=True,
    summary="Report subscriber bindings (start, interim, stop) of the caller's ISP",
)
def report_bindings(
    isp_id: PathId,
    body: BindingReport,
    db: DbSession,
    user: CurrentUser,
    clock: AppClock,
    config: Config,
) -> BindingResults:
    results = report_events(
        db,
        actor=user,
        isp_id=isp_id,
        events=[
            BindingEvent(e.event, e.subscriber_id, e.session_id, e.address, e.ports, e.until)
            for e in body.events
        ],
        now=clock.now(),
        config=config,
    )
    return BindingResults(
        results=[EventResultPublic(status=r.status, error=r.error) for r in results]
    )
