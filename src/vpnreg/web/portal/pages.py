"""Rendering portal pages: one Jinja2 environment and the context every page shares."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from vpnreg.web.auth import csrf_for, ensure_session_cookie
from vpnreg.web.form_errors import shown_errors

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.globals["shown_errors"] = shown_errors

#: Messages shown after a redirect, named by the `done` query parameter (never free text, so a
#: crafted link cannot put words in the registry's mouth).
FLASHES = {
    "created": "Application saved as a draft.",
    "submitted": "Application submitted. Your ISP will verify it next.",
    "withdrawn": "Application withdrawn.",
    "appealed": "Appeal filed. A regulator will decide on it.",
    "renewed": "Renewal submitted.",
    "uploaded": "Document uploaded.",
    "decided": "Decision recorded.",
    "bulk": "Decisions recorded.",
    "user_created": "User created.",
    "signed_up": "Welcome! Your organisation is registered; you can apply now.",
    "profile_saved": "Organisation details saved.",
    "amendment_requested": "Peer change requested. The current peers stay until a regulator "
    "approves it.",
    "amendment_approved": "Peer change approved and in force.",
    "protocols_requested": "Protocol change requested. The current VPN protocols stay until a "
    "regulator approves it.",
    "protocols_approved": "Protocol change approved and in force.",
    "protocols_refused": "Protocol change refused; the current VPN protocols stay.",
    "role_changed": "Role changed.",
    "user_deactivated": "User deactivated.",
    "user_reactivated": "User reactivated.",
}


def local_time(moment: dt.datetime, tz: dt.tzinfo) -> str:
    """A moment as the regulator's staff read it: local date and time with the zone's name."""
    local = moment.astimezone(tz)
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or "")


def age_text(since: dt.datetime, now: dt.datetime) -> str:
    """How long an item has waited, in the largest unit that says it ("3 d", "5 h", "12 min")."""
    seconds = max(0, int((now - since).total_seconds()))
    if seconds >= 86_400:
        return f"{seconds // 86_400} d"
    if seconds >= 3_600:
        return f"{seconds // 3_600} h"
    return f"{seconds // 60} min"


def render(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    """Render `name` with the signed-in user, the CSRF token and a one-shot flash message."""
    shared: dict[str, Any] = {
        "current_user": getattr(request.state, "current_user", None),
        "csrf_token": csrf_for(request),
        "flash": FLASHES.get(request.query_params.get("done", "")),
    }
    return templates.TemplateResponse(request, name, {**shared, **context}, status_code=status_code)


def render_with_cookie(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    """Render a page with a form for a visitor who may have no cookie yet: give one (its CSRF
    token goes into the form) and pass its Set-Cookie on."""
    probe = Response()
    ensure_session_cookie(request, probe)
    page = render(request, name, context, status_code=status_code)
    for header, value in probe.headers.items():
        if header == "set-cookie":
            page.headers.append(header, value)
    return page
