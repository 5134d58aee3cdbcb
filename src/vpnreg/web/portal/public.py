"""Public pages: is this IP registered, status by tracking number, aggregate statistics (with
charts, and their figures as JSON and CSV)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from vpnreg.core.statistics import DAY, trailing_days
from vpnreg.registry import services
from vpnreg.registry.errors import NotFound, ValidationFailed
from vpnreg.registry.services.stats import Statistics, registry_stats, statistics
from vpnreg.web.htmx import is_htmx
from vpnreg.web.lookup import answer_lookup
from vpnreg.web.policy import EVERYONE, allow
from vpnreg.web.portal.deps import Config, PortalClock, ReadDb
from vpnreg.web.portal.pages import local_time, render
from vpnreg.web.portal.steps import timeline_steps
from vpnreg.web.statistics_figures import Figure, figure_csv, figures, statistics_json

router = APIRouter(include_in_schema=False)


@router.get(
    "/lookup", dependencies=[allow(EVERYONE)], response_class=HTMLResponse, name="portal.lookup"
)
async def lookup_page(
    request: Request, session: ReadDb, clock: PortalClock, config: Config, ip: str = ""
) -> HTMLResponse:
    """Registered or not, category and validity; never who holds the address."""
    result = None
    errors: list[object] = []
    ip = ip.strip()
    if ip:
        try:
            result = await answer_lookup(
                request, session, address=ip, port=None, at=None, clock=clock, config=config
            )
        except ValidationFailed as exc:
            errors = list(exc.errors)
    status = 422 if errors and not is_htmx(request) else 200
    # HTMX asks for the answer alone, to show it under the box without reloading the page
    # (with 200 even for a bad address: HTMX swaps no 4xx answer by default).
    return render(
        request,
        "_lookup_result.html" if is_htmx(request) else "lookup.html",
        {"ip": ip, "result": result, "errors": errors, "tz_name": str(config.tz)},
        status_code=status,
    )


@router.get(
    "/status", dependencies=[allow(EVERYONE)], response_class=HTMLResponse, name="portal.status"
)
def status_page(
    request: Request, session: ReadDb, config: Config, tracking_number: str = ""
) -> HTMLResponse:
    """State and the dated steps of one application; no organisation, no reviewer names."""
    tracking_number = tracking_number.strip().upper()
    app = None
    steps: list[object] = []
    errors: list[object] = []
    if tracking_number:
        try:
            found = services.find_application(session, tracking_number=tracking_number)
        except NotFound:
            errors = [_Missing(f"no application has tracking number {tracking_number}")]
        else:
            app = {
                "tracking_number": found.tracking_number,
                "state": found.state,
                "category": found.category,
                "prefix_count": len(found.prefixes),
                "valid_until": found.valid_until,
            }
            steps = list(timeline_steps(session, application_id=found.id, tz=config.tz))
    return render(
        request,
        "status.html",
        {"tracking_number": tracking_number, "app": app, "steps": steps, "errors": errors},
        status_code=404 if errors else 200,
    )


class _Missing:
    """A page-level problem shaped like a FieldError for the problem macro."""

    field = ""

    def __init__(self, message: str) -> None:
        self.message = message


@router.get(
    "/stats", dependencies=[allow(EVERYONE)], response_class=HTMLResponse, name="portal.stats"
)
def stats_page(
    request: Request, session: ReadDb, clock: PortalClock, config: Config
) -> HTMLResponse:
    """Counts only: by state and by category, never names."""
    stats = registry_stats(session)
    registered = sum(n for state, n in stats.by_state.items() if state in ("active", "expiring"))
    pending = sum(
        n
        for state, n in stats.by_state.items()
        if state in ("submitted", "isp_verified", "sector_endorsed", "appealed")
    )
    headline = [
        ("Applications", stats.applications),
        ("Registered now", registered),
        ("In review", pending),
        ("Registered prefixes", stats.registered_prefixes),
        ("Organisations", stats.organisations),
    ]
    tables = [
        {
            "title": "Applications by state",
            "headers": ["State", "Applications"],
            "rows": [(s.replace("_", " "), n) for s, n in stats.by_state.items()],
        },
        {
            "title": "Applications by category",
            "headers": ["Category", "Applications"],
            "rows": [(c.replace("_", " "), n) for c, n in stats.by_category.items()],
        },
    ]
    # matplotlib loads with the first statistics page, not with every process that builds the app
    from vpnreg.web.charts import svg

    charted = _page_statistics(session, clock.now())
    shown = figures(charted)
    return render(
        request,
        "stats.html",
        {
            "headline": headline,
            "tables": tables,
            "as_of": local_time(clock.now(), config.tz),
            "period": charted.period,
            "last_day": charted.period.end - DAY,
            "charts": [(figure, svg(figure)) for figure in shown],
        },
    )


#: The span the statistics page charts: the last 90 UTC days, today included.
PAGE_DAYS = 90


def _page_statistics(session: ReadDb, now: dt.datetime) -> Statistics:
    return statistics(session, period=trailing_days(now, PAGE_DAYS), now=now)


@router.get("/stats.json", dependencies=[allow(EVERYONE)], name="portal.stats_json")
def stats_json(session: ReadDb, clock: PortalClock) -> JSONResponse:
    """The charts' figures as JSON: each figure's table, keyed by the figure's slug."""
    stats = _page_statistics(session, clock.now())
    return JSONResponse(
        statistics_json(stats, figures(stats)),
        headers={"Content-Disposition": 'inline; filename="vpnreg-statistics.json"'},
    )


@router.get("/stats/{slug}.csv", dependencies=[allow(EVERYONE)], name="portal.stats_csv")
def stats_csv(slug: str, session: ReadDb, clock: PortalClock) -> Response:
    """One figure's table as CSV."""
    found: Figure | None = next(
        (f for f in figures(_page_statistics(session, clock.now())) if f.slug == slug), None
    )
    if found is None:
        raise NotFound("statistics figure", slug)
    return Response(
        figure_csv(found),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="vpnreg-{slug}.csv"'},
    )
