"""Applicants' own pages about who they are: the public sign-up (a new organisation and its first
login, then signed in) and the organisation profile (its public details, editable).

Sign-ups are throttled per client address (vpnreg.registry.services.signups): every attempt
counts, at most VPNREG_SIGNUP_LIMIT_PER_HOUR (10) an hour, and signing in does not reset the
count; past the limit the page answers 429 with Retry-After.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from vpnreg.core.review import Role
from vpnreg.registry import services
from vpnreg.registry.errors import FieldError, RegistryError, ValidationFailed
from vpnreg.registry.services import queries
from vpnreg.registry.services.profile import INDIVIDUAL_CATEGORIES
from vpnreg.registry.services.signups import admit_signup
from vpnreg.web.auth import sign_in
from vpnreg.web.policy import APPLICANT, EVERYONE, allow, only
from vpnreg.web.portal.deps import Config, DbSession, PortalClock, PortalUser, forbid_unless
from vpnreg.web.portal.pages import render, render_with_cookie
from vpnreg.web.portal.review import CATEGORIES
from vpnreg.web.posted import Posted

router = APIRouter(include_in_schema=False)
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


@router.get(
    "/signup",
    dependencies=[allow(EVERYONE)],
    response_class=HTMLResponse,
    name="portal.signup_form",
)
def signup_form(request: Request) -> Response:
    return _signup_page(request, {"category": "software_house"}, [])


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post(
    "/signup", dependencies=[allow(EVERYONE)], response_class=HTMLResponse, name="portal.signup"
)
def signup(
    request: Request, session: DbSession, clock: PortalClock, config: Config, form: Posted
) -> Response:
    values = {f: form.get(f).strip() for f in FIELDS}
    password = form.get("password")
    national_id = form.get("national_id").strip()
    now = clock.now()
    address = _address(request)
    limit: int = request.app.state.settings.signup_limit_per_hour
    throttle = admit_signup(session, address=address, now=now, limit=limit)
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


@router.get(
    "/profile",
    dependencies=[allow(only(APPLICANT))],
    response_class=HTMLResponse,
    name="portal.profile",
)
def profile(request: Request, session: DbSession, user: PortalUser) -> Response:
    return _profile_page(request, session, user)


@router.post(
    "/profile",
    dependencies=[allow(only(APPLICANT))],
    response_class=HTMLResponse,
    name="portal.profile_save",
)
def profile_save(
    request: Request, session: DbSession, user: PortalUser, clock: PortalClock, form: Posted
) -> Response:
    values = {"name": form.get("name"), "registration_number": form.get("registration_number")}
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
        return _profile_page(
            request, session, user, form=values, errors=exc.field_errors(), status_code=422
        )
    return RedirectResponse("/profile?done=profile_saved", status_code=303)


__all__ = ["router"]
