"""Why was this address blocked? The oversight roles' page over services.explain: the gateways'
verdicts for an address or prefix from their reports, with the feed serial, implied rule and
registration of each, beside the registry's own answer at the asked time.

The form is a POST: every explanation is an audit event (a write), and GET requests get a
read-only database session.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from vpnreg.core.review import Role
from vpnreg.registry.errors import FieldError, RegistryError
from vpnreg.registry.services.explain import MAX_HOURS, explain
from vpnreg.web.policy import OVERSIGHT, allow
from vpnreg.web.portal.deps import Config, DbSession, PortalClock, PortalUser, forbid_unless
from vpnreg.web.portal.pages import render
from vpnreg.web.posted import Posted

router = APIRouter(include_in_schema=False)

_ROLES = (Role.REGULATOR, Role.AUDITOR, Role.ADMIN)


def _page(
    request: Request,
    values: dict[str, str],
    *,
    result: object = None,
    errors: list[FieldError] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "explain.html",
        {"values": values, "result": result, "errors": errors or [], "max_hours": MAX_HOURS},
        status_code=status_code,
    )


@router.get(
    "/explain", dependencies=[allow(OVERSIGHT)], response_class=HTMLResponse, name="portal.explain"
)
def explain_form(request: Request, user: PortalUser) -> Response:
    forbid_unless(user, *_ROLES)
    return _page(request, {"target": "", "at": "", "hours": "24"})


def _parse_at(text: str, now: dt.datetime) -> dt.datetime:
    if not text.strip():
        return now
    value = dt.datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        # the form's datetime-local input sends a naive time: it is UTC, as the label says
        value = value.replace(tzinfo=dt.UTC)
    return value


@router.post(
    "/explain",
    dependencies=[allow(OVERSIGHT)],
    response_class=HTMLResponse,
    name="portal.explain_run",
)
def explain_run(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    config: Config,
    form: Posted,
) -> Response:
    forbid_unless(user, *_ROLES)
    values = {k: form.get(k).strip() for k in ("target", "at", "hours")}
    now = clock.now()
    problems: list[FieldError] = []
    try:
        at = _parse_at(values["at"], now)
    except ValueError:
        problems.append(
            FieldError("at", "invalid", "time must be like 2026-01-15T09:00", values["at"])
        )
    try:
        hours = int(values["hours"] or "24")
    except ValueError:
        problems.append(FieldError("hours", "invalid", "hours must be a whole number"))
    if problems:
        return _page(request, values, errors=problems, status_code=422)
    try:
        result = explain(
            session,
            actor=user,
            target=values["target"],
            at=at,
            hours=hours,
            now=now,
            config=config,
        )
    except RegistryError as exc:
        return _page(request, values, errors=exc.field_errors(), status_code=exc.status)
    return _page(request, values, result=result)
