"""Admin pages: the users and their roles, and creating a login."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from vpnreg.core.review import Role
from vpnreg.registry import services
from vpnreg.registry.errors import FieldError, RegistryError, ValidationFailed
from vpnreg.registry.services import queries
from vpnreg.registry.services.unit_of_work import DbSession as Session
from vpnreg.web.bounds import Offset, PathId, parse_id
from vpnreg.web.policy import ADMIN, allow, only
from vpnreg.web.portal.deps import DbSession, PortalClock, PortalUser, forbid_unless
from vpnreg.web.portal.pages import render
from vpnreg.web.posted import Posted

router = APIRouter(include_in_schema=False)
ROLES = tuple(r.value for r in Role if r not in (Role.SYSTEM, Role.GATEWAY))


#: Users per page of the admin list.
USERS_PER_PAGE = 50


def _page(
    request: Request,
    session: Session,
    errors: list[FieldError],
    status_code: int = 200,
    offset: int = 0,
) -> HTMLResponse:
    users = queries.list_users(session, limit=USERS_PER_PAGE, offset=offset)
    return render(
        request,
        "admin_users.html",
        {
            "users": users.items,
            "page": users,
            "previous": max(0, users.offset - users.limit) if users.offset > 0 else None,
            "next": users.offset + users.limit
            if users.offset + users.limit < users.total
            else None,
            "isps": queries.list_isps(session),
            "sector_bodies": queries.list_sector_bodies(session),
            "roles": ROLES,
            "links": _links(session),
            "errors": errors,
        },
        status_code=status_code,
    )


@router.get(
    "/admin/users",
    dependencies=[allow(only(ADMIN))],
    response_class=HTMLResponse,
    name="portal.admin_users",
)
def users_page(
    request: Request, session: DbSession, user: PortalUser, offset: Offset = 0
) -> Response:
    forbid_unless(user, Role.ADMIN)
    return _page(request, session, [], offset=offset)


def _optional_id(value: str) -> int | None:
    return parse_id(value)


@router.post(
    "/admin/users",
    dependencies=[allow(only(ADMIN))],
    response_class=HTMLResponse,
    name="portal.admin_create_user",
)
def create_user(
    request: Request, session: DbSession, user: PortalUser, clock: PortalClock, form: Posted
) -> Response:
    forbid_unless(user, Role.ADMIN)
    try:
        services.create_user(
            session,
            username=form.get("username"),
            password=form.get("password"),
            role=form.get("role"),
            actor=user,
            now=clock.now(),
            organisation_id=_optional_id(form.get("organisation_id")),
            isp_id=_optional_id(form.get("isp_id")),
            sector_body_id=_optional_id(form.get("sector_body_id")),
        )
    except RegistryError as exc:
        return _failed(request, session, exc)
    return RedirectResponse("/admin/users?done=user_created", status_code=303)


def _links(session: Session) -> list[tuple[str, str]]:
    """What a user may act for, as (value, label) for one select: organisation:ID, isp:ID,
    sector_body:ID (the role decides which one is needed)."""
    links = [
        (f"organisation:{o.id}", o.name) for o in queries.list_organisations(session, viewer=None)
    ]
    links += [(f"isp:{i.id}", f"ISP {i.name}") for i in queries.list_isps(session)]
    links += [
        (f"sector_body:{b.id}", f"Sector body {b.name}")
        for b in queries.list_sector_bodies(session)
    ]
    return links


def _link_ids(value: str) -> dict[str, int | None]:
    kind, _, number = value.partition(":")
    ids: dict[str, int | None] = {"organisation_id": None, "isp_id": None, "sector_body_id": None}
    if f"{kind}_id" in ids:
        ids[f"{kind}_id"] = parse_id(number)
    return ids


def _failed(request: Request, session: Session, exc: RegistryError) -> HTMLResponse:
    return _page(request, session, exc.field_errors(), status_code=exc.status)


@router.post(
    "/admin/users/{user_id}/role",
    dependencies=[allow(only(ADMIN))],
    response_class=HTMLResponse,
    name="portal.admin_role",
)
def change_role(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    user_id: PathId,
    form: Posted,
) -> Response:
    """Another role for a user, with the organisation, ISP or sector body that role needs."""
    forbid_unless(user, Role.ADMIN)
    role = form.get("role")
    link = form.get("link")
    try:
        services.set_user_role(
            session, user_id=user_id, role=role, actor=user, now=clock.now(), **_link_ids(link)
        )
    except RegistryError as exc:
        return _failed(request, session, exc)
    return RedirectResponse("/admin/users?done=role_changed", status_code=303)


@router.post(
    "/admin/users/{user_id}/active",
    dependencies=[allow(only(ADMIN))],
    response_class=HTMLResponse,
    name="portal.admin_active",
)
def change_active(
    request: Request,
    session: DbSession,
    user: PortalUser,
    clock: PortalClock,
    user_id: PathId,
    form: Posted,
) -> Response:
    """Deactivate (active=no) or reactivate (active=yes) a user."""
    forbid_unless(user, Role.ADMIN)
    wanted = form.get("active")
    try:
        if wanted not in ("yes", "no"):
            raise ValidationFailed([FieldError("active", "required", "say yes or no", wanted)])
        services.set_user_active(
            session, user_id=user_id, active=wanted == "yes", actor=user, now=clock.now()
        )
    except RegistryError as exc:
        return _failed(request, session, exc)
    done = "user_reactivated" if wanted == "yes" else "user_deactivated"
    return RedirectResponse(f"/admin/users?done={done}", status_code=303)
