"""The public page of enforcement mode changes (ADR 0012): every trial and switch, newest first,
with its start, end and reason; the JSON twin is /transparency/mode-changes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from vpnreg.registry.services.mode_changes import list_changes
from vpnreg.web.policy import EVERYONE, allow
from vpnreg.web.portal.deps import Config, PortalClock, ReadDb
from vpnreg.web.portal.pages import local_time, render

router = APIRouter(include_in_schema=False)


@router.get(
    "/mode-changes",
    dependencies=[allow(EVERYONE)],
    response_class=HTMLResponse,
    name="portal.mode_changes",
)
def mode_changes_page(
    request: Request, session: ReadDb, clock: PortalClock, config: Config
) -> HTMLResponse:
    now = clock.now()
    changes = [
        {
            "change": c,
            "start": local_time(c.started_at, config.tz),
            "planned_end": None if c.planned_end is None else local_time(c.planned_end, config.tz),
            "ended_at": None if c.ended_at is None else local_time(c.ended_at, config.tz),
            "in_force": c.ended_at is None,
            "overdue": c.planned_end is not None and c.ended_at is None and c.planned_end <= now,
        }
        for c in list_changes(session)
    ]
    return render(request, "mode_changes.html", {"changes": changes})
