"""THE policy table: for every route (method, path template), who may call it.

Each route declares who may call it where it is defined, with `dependencies=[allow(ACCESS)]`
(or its router does, for all its routes); `build_policy` reads those declarations off the app's
routes into one table, adding CORE_POLICY for the few routes that are not API routes (OpenAPI,
static files). The app enforces the table in one dependency on every API route
(vpnreg.web.auth.enforce_policy), and tests/web/test_authorization_matrix.py calls every route of
create_app as every role and checks the answer against this table. A route that declares nothing
is refused to everyone and fails that test.

Object-level rules (an applicant sees its own organisation's applications only, an ISP those
naming it, a sector body its categories) are applied inside the routes through the registry's
query and service layers; the table decides only which roles may call a route at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount, compile_path

from vpnreg.core.review import Role

#: Callers without a login.
PUBLIC = "public"
#: Methods that change nothing: no CSRF check, no feed notify, a read-only database session.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: A route key: HTTP method and the route's path template, e.g. ("GET", "/api/v1/ip/{address}").
RouteKey: TypeAlias = tuple[str, str]
Access: TypeAlias = frozenset[str]

APPLICANT = Role.APPLICANT.value
ISP = Role.ISP.value
SECTOR_BODY = Role.SECTOR_BODY.value
REGULATOR = Role.REGULATOR.value
AUDITOR = Role.AUDITOR.value
ADMIN = Role.ADMIN.value
GATEWAY = Role.GATEWAY.value

#: Every caller a matrix test plays, the public included.
ALL_CALLERS: tuple[str, ...] = (
    PUBLIC,
    APPLICANT,
    ISP,
    SECTOR_BODY,
    REGULATOR,
    AUDITOR,
    ADMIN,
    GATEWAY,
)
#: People who sign in to the portal (not machines).
PEOPLE: Access = frozenset({APPLICANT, ISP, SECTOR_BODY, REGULATOR, AUDITOR, ADMIN})
EVERYONE: Access = frozenset(ALL_CALLERS)
#: Those who read applications (each within its own scope).
READERS: Access = frozenset({APPLICANT, ISP, SECTOR_BODY, REGULATOR, AUDITOR, ADMIN})
#: The regulator's side, which sees everything.
OVERSIGHT: Access = frozenset({REGULATOR, AUDITOR, ADMIN})


def only(*roles: str) -> Access:
    unknown = set(roles) - set(ALL_CALLERS)
    if unknown:
        raise ValueError(f"unknown roles in policy: {sorted(unknown)}")
    return frozenset(roles)


#: Routes that are no API routes, so they cannot declare their access themselves.
CORE_POLICY: dict[RouteKey, Access] = {
    ("GET", "/api/v1/openapi.json"): EVERYONE,
    ("GET", "/api/v1/docs"): EVERYONE,
    ("GET", "/static"): EVERYONE,
}


class PolicyError(ValueError):
    """The routes' declarations contradict each other."""


class AccessRule:
    """A route's declaration of who may call it. As a dependency it does nothing: enforcement
    is enforce_policy's, over the table built from these declarations."""

    def __init__(self, access: Access) -> None:
        self.access = access

    async def __call__(self) -> None:
        return None


def allow(access: Access) -> Any:
    """`dependencies=[allow(READERS)]` on a route (or a router): who may call it."""
    return Depends(AccessRule(frozenset(access)))


def declared_access(entry: EffectiveRoute) -> Access | None:
    """The access a route declares (through its own or its routers' dependencies), if any."""
    found: set[Access] = set()
    for dependency in entry.dependencies:
        rule = getattr(dependency, "dependency", None)
        if isinstance(rule, AccessRule):
            found.add(rule.access)
    if len(found) > 1:
        raise PolicyError(f"{entry.path} declares two different policies")
    return next(iter(found), None)


def build_policy(app: FastAPI) -> dict[RouteKey, Access]:
    """CORE_POLICY plus what every API route of `app` declares."""
    policy: dict[RouteKey, Access] = dict(CORE_POLICY)
    for entry in effective_routes(app):
        access = declared_access(entry) if entry.enforced else None
        if access is None:
            continue
        for method in entry.methods:
            key = (method.upper(), entry.path)
            if key in policy and policy[key] != access:
                raise PolicyError(f"{method} {entry.path} is given two different policies")
            policy[key] = access
    return policy


def access_for(policy: Mapping[RouteKey, Access], method: str, path: str) -> Access | None:
    """Who may call `method path` (a route template); None when the table does not say."""
    method = method.upper()
    if method == "HEAD":
        method = "GET"
    return policy.get((method, path))


def allows(access: Access | None, caller: str | None) -> bool:
    """Whether a caller of role `caller` (None: the public) passes `access`."""
    if access is None:
        return False
    if PUBLIC in access:
        return True
    return caller is not None and caller in access


@dataclass(frozen=True)
class EffectiveRoute:
    """One route as the app serves it: full path template, methods, and the route object."""

    path: str
    methods: frozenset[str]
    route: object
    #: False for routes the policy dependency does not run on (static files, OpenAPI pages).
    enforced: bool
    #: The route's dependencies with its routers' and the app's, as they run.
    dependencies: tuple[object, ...] = ()


def effective_routes(app: FastAPI) -> list[EffectiveRoute]:
    """Every route of `app`, included routers flattened, with the paths clients call."""
    found: list[EffectiveRoute] = []
    for context in iter_route_contexts(app.routes):
        original = context.original_route
        path = context.path or getattr(original, "path", None)
        if path is None:
            continue
        if isinstance(original, Mount):
            found.append(EffectiveRoute(path, frozenset({"GET"}), original, enforced=False))
            continue
        methods = frozenset(m for m in (context.methods or {"GET"}) if m != "HEAD") or {"GET"}
        enforced = isinstance(original, APIRoute)
        dependencies = tuple(getattr(context, "dependencies", None) or ())
        found.append(EffectiveRoute(path, frozenset(methods), original, enforced, dependencies))
    return found


def route_path_of(app: FastAPI, route: object, request_path: str) -> str | None:
    """The full path template of `route` (the object FastAPI puts in scope["route"])."""
    index: dict[int, list[EffectiveRoute]] | None = getattr(app.state, "route_index", None)
    if index is None:
        index = {}
        for entry in effective_routes(app):
            index.setdefault(id(entry.route), []).append(entry)
        app.state.route_index = index
    candidates = index.get(id(route), [])
    if len(candidates) == 1:
        return candidates[0].path
    for entry in candidates:
        regex = getattr(entry, "path_regex", None) or compile_path(entry.path)[0]
        if regex.match(request_path):
            return entry.path
    return None


def allowed_methods(app: FastAPI, request_path: str) -> list[str]:
    """Every method some route of `app` answers at `request_path`, sorted (for `Allow`)."""
    methods: set[str] = set()
    for entry in effective_routes(app):
        if entry.enforced and compile_path(entry.path)[0].match(request_path):
            methods.update(entry.methods)
    return sorted(methods)
