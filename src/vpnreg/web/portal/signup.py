"""Applicants' own pages about who they are: the public sign-up (a new organisation and its first
login, then signed in) and the organisation profile (its public details, editable).

Sign-ups are throttled per client address like sign-ins: every attempt is counted in the
sign-in failure table under the pseudo-username SIGNUP_ACTOR, and past the limit within the
window the page answers 429 with Retry-After.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from vpnreg.core.review import Role
from vpnreg.registry import services
from vpnreg.registry.errors import FieldError, RegistryError, ValidationFailed
from vpnreg.registry.services import queries
from vpnreg.registry.services.profile import INDIVIDUAL_CATEGORIES, SIGNUP_ACTOR
from vpnreg.registry.services.sessions import login_throttle, record_login_failure
from vpnreg.web.auth import sign_in
from vpnreg.web.policy import APPLICANT, EVERYONE, Access, RouteKey, only
from vpnreg.web.portal.deps import Config, DbSession, PortalClock, PortalUser, forbid_unless
from vpnreg.web.portal.pages import render, render_with_cookie
from vpnreg.web.portal.review import CATEGORIES

router = APIRouter(include_in_schema=False)
POLICY: dict[RouteKey, Access] = {
    ("GET", "/signup"): EVERYONE,
    ("POST", "/signup"): EVERYONE,
    ("GET", "/profile"): only(APPLICANT),
    ("POST", "/profile"): only(APPLICANT),
}
#: Sign-up attempts allowed per client address within the window.
SIGNUP_LIMIT = 10
SIGNUP_WINDOW = dt.timedelta(hours=1)
FIELDS = ("name", "category", "registration_number", "username")


def _signup_page(
    request: Request,
    form: dict[str, str],
    errors: list[FieldError],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    page = render_with_cookie(
        request,
        "signup.html",
        {
            "form": form,
            "errors": errors,
            "categories": CATEGORIES,
            "individual_categories": sorted(INDIVIDUAL_CATEGORIES),
        },
        status_code=status_code,
    )
    page.headers.update(headers or {})
    return page


@router.get("/signup", response_class=HTMLResponse, name="portal.signup_form")
def signup_form(request: Request) -> Response:
    return _signup_page(request, {"category": "software_house"}, [])


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/signup", response_class=HTMLResponse, name="portal.signup")
async def signup(
    request: Request, session: DbSession, clock: PortalClock, config: Config
) -> Response:
    form = await request.form()
    try:
        values = {f: str(form.get(f) or "").strip() for f in FIELDS}
        password = str(form.get("password") or "")
        national_id = str(form.get("national_id") or "").strip()
    finally:
        await form.close()
    now = clock.now()
    address = _address(request)
    throttle = login_throttle(
        session,
        username=SIGNUP_ACTOR,
        address=address,
        now=now,
        limit=SIGNUP_LIMIT,
        window=SIGNUP_WINDOW,
    )
    if throttle.blocked:
        minutes = max(1, (throttle.retry_after + 59) // 60)
        problem = FieldError("", "throttled", f"Too many sign-ups. Try again in {minutes} minutes.")
        return _signup_page(
            request,
            values,
            [problem],
            status_code=429,
            headers={"Retry-After": str(throttle.retry_after)},
        )
    record_login_failure(session, username=SIGNUP_ACTOR, address=address, now=now)
    try:
        user = services.sign_up(
            session,
            name=values["name"],
            category=values["category"],
            username=values["username"],
            password=password,
            now=now,
            config=config,
            registration_number=values["registration_number"] or None,
            national_id=national_id or None,
        )
    except ValidationFailed as exc:
        return _signup_page(request, values, list(exc.errors), status_code=422)
    response = RedirectResponse("/apply?done=signed_up", status_code=303)
    sign_in(request, response, session, user, clock)
    return response


def _profile_page(
    request: Request,
    session: DbSession,
    user: PortalUser,
    *,
    form: dict[str, str] | None = None,
    errors: list[FieldError] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    forbid_unless(user, Role.APPLICANT)
    org = queries.get_organisation(session, organisation_id=user.organisation_id or 0, viewer=user)
    shown = form or {"name": org.name, "registration_number": org.registration_number or ""}
    return render(
        request,
        "profile.html",
        {
            "organisation": org,
            "form": shown,
            "individual": org.category in INDIVIDUAL_CATEGORIES,
            "errors": errors or [],
        },
        status_code=status_code,
    )


@router.get("/profile", response_class=HTMLResponse, name="portal.profile")
def profile(request: Request, session: DbSession, user: PortalUser) -> Response:
    return _profile_page(request, session, user)


@router.post("/profile", response_class=HTMLResponse, name="portal.profile_save")
async def profile_save(
    request: Request, session: DbSession, user: PortalUser, clock: PortalClock
) -> Response:
    form = await request.form()
    try:
        values = {
            "name": str(form.get("name") or ""),
            "registration_number": str(form.get("registration_number") or ""),
        }
    finally:
        await form.close()
    try:
        forbid_unless(user, Role.APPLICANT)
        services.update_organisation(
            session,
            organisation_id=user.organisation_id or 0,
            actor=user,
            now=clock.now(),
            name=values["name"],
            registration_number=values["registration_number"] or None,
        )
    except RegistryError as exc:
        errors = (
            list(exc.errors)
            if isinstance(exc, ValidationFailed)
            else [FieldError("", exc.code, str(exc))]
        )
        return _profile_page(request, session, user, form=values, errors=errors, status_code=422)
    return RedirectResponse("/profile?done=profile_saved", status_code=303)


__all__ = ["POLICY", "SIGNUP_LIMIT", "router"]
