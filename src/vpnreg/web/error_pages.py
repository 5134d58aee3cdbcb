"""Error pages for people: the problem a route raised, said in the portal's layout.

Each status has a heading saying what happened and a sentence saying what to do next; the page
offers a way back (sign in for 401, the page the visitor came from, the home page). The problem
document itself rides along in the page's `data-problem` attribute, so a script or test reading
the page still finds its `code`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from vpnreg.web.auth import resolve_user, session_cookie
from vpnreg.web.portal.pages import render

#: status -> (what happened, what to do next)
ADVICE: dict[int, tuple[str, str]] = {
    400: ("The request could not be understood", "Go back, check what you entered and try again."),
    401: ("You need to sign in", "Sign in to continue. New here? Register your organisation."),
    403: (
        "You cannot use this page",
        "Your account does not allow this. If you think it should, ask the registry's "
        "administrator to check your role.",
    ),
    404: (
        "Page not found",
        "Check the address. If you followed a link to an application, it may not exist or may "
        "not be one your account can see.",
    ),
    405: ("That cannot be done on this page", "Go back and use the page's own buttons."),
    409: (
        "That cannot be done at this step",
        "The application is not in a state that allows it. Open it again to see its current "
        "state and what you can do now.",
    ),
    412: (
        "The application changed while you were looking at it",
        "Someone else acted on it meanwhile. Open it again to see the latest version, then "
        "decide again.",
    ),
    413: (
        "The file is too large",
        "Nothing was saved. Upload a smaller file: a document may be at most 5 MB.",
    ),
    422: ("Some of what you sent is not valid", "Go back, correct it and send it again."),
    428: ("The page is out of date", "Reload the page and try again."),
    429: ("Too many attempts", "Wait a few minutes, then try again."),
    500: (
        "Sorry, something went wrong on our side",
        "Nothing was half-saved. Try again in a few minutes; if it keeps happening, tell the "
        "registry's help desk the time it happened.",
    ),
    503: ("The registry is busy", "Wait a few seconds, then try again."),
}

#: Details too technical (or too revealing) to show a person; the heading says it all.
_HIDDEN_DETAIL_CODES = frozenset({"server-error", "role-not-allowed", "no-policy"})
_STARLETTE_DETAILS = frozenset({"Not Found", "Method Not Allowed"})


def advice_for(status: int) -> tuple[str, str]:
    return ADVICE.get(status, ADVICE[500] if status >= 500 else ADVICE[400])


def _back_link(request: Request) -> str | None:
    """The portal page the visitor came from (same site only), if any other than this one."""
    referer = request.headers.get("referer", "")
    if not referer:
        return None
    parts = urlsplit(referer)
    if parts.netloc != request.url.netloc or parts.path == request.url.path:
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def recognise_visitor(request: Request) -> None:
    """Routes learn who is signed in from their policy check; a path no route serves never ran
    one. Look the session cookie up, so the 404 page's navigation is the visitor's own."""
    if hasattr(request.state, "principal") or session_cookie(request) is None:
        return

    def lookup() -> None:
        with request.app.state.database.session() as session:
            request.state.current_user = resolve_user(request, session, request.app.state.clock)

    try:
        await run_in_threadpool(lookup)
    except Exception:
        # The error page must render even when the database is what failed.
        request.state.current_user = None


def error_page(
    request: Request,
    status: int,
    code: str,
    detail: str,
    document: JSONResponse,
    *,
    headers: Mapping[str, str] | None = None,
) -> Response:
    heading, next_step = advice_for(status)
    shown_detail = (
        detail if code not in _HIDDEN_DETAIL_CODES and detail not in _STARLETTE_DETAILS else ""
    )
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    # Bare in a single-quoted attribute: none of the characters that could end it or start a
    # character reference is left (JSON reads `\u0027` as `'`).
    problem_json = json.dumps(json.loads(bytes(document.body)), separators=(",", ":"))
    for char in "'&<>":
        problem_json = problem_json.replace(char, f"\\u{ord(char):04x}")
    page = render(
        request,
        "error.html",
        {
            "title": heading,
            "message": shown_detail,
            "next_step": next_step,
            "status": status,
            "errors": [],
            "sign_in": f"/login?next={quote(here)}" if status == 401 else None,
            "back": _back_link(request),
            "problem_json": problem_json,
        },
        status_code=status,
    )
    for name, value in (headers or {}).items():
        page.headers[name] = value
    return page
