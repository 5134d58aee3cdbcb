"""THE policy table: for every route (method, path template), who may call it.

Each router module contributes a `POLICY` dict next to its `router`; `build_policy` merges them
(a route named twice is an error) and adds the prefix rules (every /feed/v1/ route is gateway
only). The app enforces the table in one dependency on every API route (vpnreg.web.auth
.enforce_policy), and tests/web/test_authorization_matrix.py calls every route of create_app as
every role and checks the answer against this table. A route without an entry is refused to
everyone and fails that test.

Object-level rules (an applicant sees its own organisation's applications only, an ISP those
naming it, a sector body its categories) are applied inside the routes through the registry's
query and service layers; the table decides only which roles may call a route at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TypeAlias

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount, compile_path

from vpnreg.core.review import Role

#: Callers without a login.
PUBLIC = "public"
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


#: Routes outside any router module: the home page, health, OpenAPI and static files.
CORE_POLICY: dict[RouteKey, Access] = {
    ("GET", "/"): EVERYONE,
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/login"): EVERYONE,
    ("GET", "/api/v1/openapi.json"): EVERYONE,
    ("GET", "/api/v1/docs"): EVERYONE,
    ("GET", "/static"): EVERYONE,
}

#: Path prefixes whose routes all share one rule (checked when no exact entry exists).
PREFIX_POLICY: dict[str, Access] = {
    "/feed/v1/": only(GATEWAY),
}


class PolicyError(ValueError):
    """The policy tables contradict each other."""


def merge_policies(tables: Iterable[Mapping[RouteKey, Access]]) -> dict[RouteKey, Access]:
    merged: dict[RouteKey, Access] = {}
    for table in tables:
        for key, access in table.items():
            method, path = key
            normal = (method.upper(), path)
            if normal in merged and merged[normal] != access:
                raise PolicyError(f"{method} {path} is given two different policies")
            merged[normal] = frozenset(access)
    return merged


def build_policy(modules: Iterable[ModuleType]) -> dict[RouteKey, Access]:
    """CORE_POLICY plus the POLICY dict of each router module that has one."""
    tables: list[Mapping[RouteKey, Access]] = [CORE_POLICY]
    for module in modules:
        table = getattr(module, "POLICY", None)
        if table is not None:
            tables.append(table)
    return merge_policies(tables)


def access_for(policy: Mapping[RouteKey, Access], method: str, path: str) -> Access | None:
    """Who may call `method path` (a route template); None when the table does not say."""
    method = method.upper()
    if method == "HEAD":
        method = "GET"
    exact = policy.get((method, path))
    if exact is not None:
        return exact
    for prefix, access in PREFIX_POLICY.items():
        if path.startswith(prefix):
            return access
    return None


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
        found.append(EffectiveRoute(path, frozenset(methods), original, enforced=enforced))
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
