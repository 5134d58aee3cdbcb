"""The gateway list for the regulator and the admin: each gateway's last report, applied feed
serial, lag, and the flags for a stale gateway or one on another set hash (ADR 0010)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from vpnreg.core.review import Role
from vpnreg.registry.services.gateway_reports import STALE_INTERVALS, gateway_list
from vpnreg.web.policy import ADMIN, REGULATOR, allow, only
from vpnreg.web.portal.deps import DbSession, PortalClock, PortalUser, forbid_unless
from vpnreg.web.portal.pages import render

router = APIRouter(include_in_schema=False)


@router.get(
    "/gateways",
    dependencies=[allow(only(REGULATOR, ADMIN))],
    response_class=HTMLResponse,
    name="portal.gateways",
)
def gateways_page(
    request: Request, session: DbSession, user: PortalUser, clock: PortalClock
) -> Response:
    forbid_unless(user, Role.REGULATOR, Role.ADMIN)
    return render(
        request,
        "gateways.html",
        {"gateways": gateway_list(session, now=clock.now()), "stale_intervals": STALE_INTERVALS},
    )
