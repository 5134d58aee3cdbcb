"""Who is calling, and whether the policy table lets them: sessions, tokens, CSRF, sign-in.

Browsers sign in with a form (POST /login) and carry an HttpOnly, SameSite=Lax session cookie; the
server keeps the session (only a hash of the cookie's token is stored). Machines send
`Authorization: Bearer <token>`: an API token scoped by a role, or one bound to a user, which acts
as that user (its current role and scope). Every state-changing request that
does not come with a bearer token must carry the CSRF token of its cookie, in the form field
`csrf_token` or the header `X-CSRF-Token`; without it the answer is 403.

Dependencies for routes (use the Annotated aliases):
  DbSession       a registry session for this request (the same one all dependencies share)
  AppClock        the app's Clock (app.state.clock)
  Config          the ServiceConfig (app.state.service_config)
  CurrentCaller   the Principal: a user, a token, or the public
  CurrentUser     the acting UserView: signed in, or named by a user-bound token (401 without one;
                  403 for a role-only token)
  OptionalUser    the signed-in UserView or None
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from vpnreg.clock import Clock, SystemClock
from vpnreg.registry import credential_changes
from vpnreg.registry.services import ServiceConfig, authenticate
from vpnreg.registry.services.sessions import (
    SESSION_LIFETIME,
    clear_login_failures,
    end_web_session,
    login_throttle,
    record_login_failure,
    resolve_web_session,
    start_web_session,
)
from vpnreg.registry.services.tokens import authenticate_token, effective_role
from vpnreg.registry.services.unit_of_work import DbSession as Session
from vpnreg.registry.views import UserView
from vpnreg.web.background import spawn
from vpnreg.web.htmx import is_htmx
from vpnreg.web.policy import (
    EVERYONE,
    PUBLIC,
    SAFE_METHODS,
    RouteKey,
    access_for,
    allow,
    allows,
    route_path_of,
)
from vpnreg.web.problems import Problem
from vpnreg.web.security import csrf_token, csrf_valid
from vpnreg.web.token_cache import TokenCache

_LOG = logging.getLogger(__name__)

SESSION_COOKIE = "vpnreg_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
#: Sign-in throttling: this many failures per username and address within the window.
LOGIN_FAILURE_LIMIT = 5
LOGIN_FAILURE_WINDOW = dt.timedelta(minutes=15)


# --- request-scoped resources ---------------------------------------------------------------


# The dependencies below that do no I/O are `async def`: FastAPI runs a plain `def` dependency
# in its threadpool, and each such hop (queue, thread wake-up, result back to the loop) cost
# more than the work itself while competing for the GIL with the requests being served.


async def get_db(request: Request) -> AsyncIterator[Session]:
    # Opening a session does no I/O (it connects on first use), so it happens on the loop;
    # closing one that was used goes to the Database's own releasing thread, never to the
    # request pool that waiting routes may fill.
    database = request.app.state.database
    session = database.open_request()
    try:
        yield session
    finally:
        await database.close_request(session)


async def get_clock(request: Request) -> Clock:
    clock: Clock = getattr(request.app.state, "clock", None) or SystemClock()
    return clock


async def get_config(request: Request) -> ServiceConfig:
    config: ServiceConfig = request.app.state.service_config
    return config


DbSession = Annotated[Session, Depends(get_db)]
AppClock = Annotated[Clock, Depends(get_clock)]
Config = Annotated[ServiceConfig, Depends(get_config)]


# --- who is calling ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """The caller: a signed-in user, a machine with a token, or the public.

    A user-bound token gives via="token" with both `user` and `token_name` set.
    """

    via: Literal["session", "token", "public"]
    role: str | None = None
    user: UserView | None = None
    token_name: str | None = None

    @property
    def name(self) -> str:
        if self.user is not None:
            return self.user.username
        if self.token_name is not None:
            return f"token:{self.token_name}"
        return PUBLIC


PUBLIC_CALLER = Principal(via="public")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Problem(401, "not-signed-in", "the Authorization header must be 'Bearer <token>'")
    return value.strip()


def session_cookie(request: Request) -> str | None:
    value = request.cookies.get(SESSION_COOKIE)
    if value and 16 <= len(value) <= 128:
        return value
    return None


def resolve_user(request: Request, session: Session, clock: Clock) -> UserView | None:
    """The user signed in with this request's cookie, or None."""
    token = session_cookie(request)
    if token is None:
        return None
    return resolve_web_session(session, token=token, now=clock.now())


def _token_cache(request: Request) -> TokenCache[Principal] | None:
    cache: TokenCache[Principal] | None = getattr(request.app.state, "token_cache", None)
    return cache


def cached_caller(request: Request, now: dt.datetime) -> Principal | None:
    """The caller of a request whose bearer token was checked moments ago (web.token_cache),
    without I/O; None to resolve it in full. A malformed Authorization header is its 401.
    When the entry is due to be checked again, that check starts in the background."""
    token = _bearer(request)
    cache = _token_cache(request)
    if token is None or cache is None:
        return None
    found = cache.get(token, now)
    if found is not None and cache.claim_refresh(token):
        spawn(_refresh(request.app.state, cache, token))
    return found


async def _refresh(state: Any, cache: TokenCache[Principal], token: str) -> None:
    try:
        await run_in_threadpool(_check_again, state, cache, token)
    except Exception:
        # the entry stays until its time is up; the request after that checks the token
        _LOG.exception("token cache: checking a token again failed")
    finally:
        cache.release(token)


def _check_again(state: Any, cache: TokenCache[Principal], token: str) -> None:
    with state.database.session() as db:
        principal = _token_principal(db, cache, token, state.clock.now())
    if principal is None:
        cache.forget(token)


def _remember(request: Request, principal: Principal) -> Principal:
    request.state.principal = principal
    request.state.current_user = principal.user
    return principal


def _resolve_principal(request: Request, db: Session, clock: Clock) -> Principal:
    token = _bearer(request)
    if token is not None:
        principal = _token_principal(db, _token_cache(request), token, clock.now())
        if principal is None:
            raise Problem(
                401,
                "not-signed-in",
                "unknown, revoked or expired API token",
                headers={"WWW-Authenticate": "Bearer"},
            )
    else:
        user = resolve_user(request, db, clock)
        principal = (
            PUBLIC_CALLER if user is None else Principal(via="session", role=user.role, user=user)
        )
    _remember(request, principal)
    _end_read(db)
    return principal


def _token_principal(
    db: Session, cache: TokenCache[Principal] | None, token: str, now: dt.datetime
) -> Principal | None:
    """The caller `token` makes, checked in the database and kept in `cache`; None when the
    token is unknown, revoked or expired."""
    # taken before the read: a revocation committed meanwhile makes the entry stale
    generation = credential_changes.generation()
    api_token = authenticate_token(db, token=token, now=now)
    if api_token is None:
        return None
    principal = Principal(
        via="token",
        role=effective_role(api_token),
        user=api_token.user,
        token_name=api_token.name,
    )
    if cache is not None:
        cache.put(token, principal, generation=generation, expires_at=api_token.expires_at)
    return principal


def _end_read(db: Session) -> None:
    """End the read that resolved the caller, so the request's session holds no pooled
    connection while the route runs: a gateway's long poll waits up to a minute, and a thousand
    of them each holding a connection emptied the pool (40) and stalled every request (found by
    bench_gateway_fanout). The route's first statement takes a connection again. Nothing is
    pending here: the token and session services commit their own writes."""
    if not (db.new or db.dirty or db.deleted):
        db.rollback()


async def get_principal(request: Request, db: DbSession, clock: AppClock) -> Principal:
    """The caller, resolved once per request (enforce_policy usually does it first); only the
    first call goes to a thread for the session or token lookup, and not even that for a token
    checked moments ago (vpnreg.web.token_cache)."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    known = cached_caller(request, clock.now())
    if known is not None:
        return _remember(request, known)
    return await run_in_threadpool(_resolve_principal, request, db, clock)


CurrentCaller = Annotated[Principal, Depends(get_principal)]


async def optional_user(principal: CurrentCaller) -> UserView | None:
    return principal.user


async def current_user(principal: CurrentCaller) -> UserView:
    if principal.user is not None:
        return principal.user
    if principal.via == "token":
        raise Problem(
            403,
            "forbidden",
            "this needs a user; a role-only API token cannot do it (use a user-bound token)",
        )
    raise Problem(401, "not-signed-in", "sign in first")


OptionalUser = Annotated[UserView | None, Depends(optional_user)]
CurrentUser = Annotated[UserView, Depends(current_user)]


# --- CSRF --------------------------------------------------------------------------------------


def csrf_for(request: Request) -> str:
    """The CSRF token for forms rendered in this request ("" when the visitor has no cookie)."""
    cookie = session_cookie(request) or getattr(request.state, "new_session_cookie", None)
    if cookie is None:
        return ""
    return csrf_token(request.app.state.signing_key, cookie)


def ensure_session_cookie(request: Request, response: Response) -> str:
    """Give a visitor without a cookie an anonymous one (forms need it for their CSRF token)."""
    cookie = session_cookie(request) or getattr(request.state, "new_session_cookie", None)
    if cookie is None:
        cookie = secrets.token_urlsafe(32)
        request.state.new_session_cookie = cookie
    if session_cookie(request) is None:
        set_session_cookie(request, response, cookie)
    return cookie


def set_session_cookie(request: Request, response: Response, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        httponly=True,
        samesite="lax",
        secure=request.app.state.settings.is_production,
        path="/",
        max_age=int(SESSION_LIFETIME.total_seconds()),
    )


async def _submitted_csrf(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def check_csrf(request: Request) -> None:
    """403 unless the request carries the CSRF token of its session cookie."""
    cookie = session_cookie(request)
    submitted = await _submitted_csrf(request)
    if cookie is None or not csrf_valid(request.app.state.signing_key, cookie, submitted):
        raise Problem(
            403,
            "csrf-failed",
            "the form or request lacks a valid CSRF token; reload the page and try again",
        )


# --- the one enforcement point ---------------------------------------------------------------


def route_key(request: Request) -> RouteKey:
    """The request's method and the full path template of the route serving it."""
    route = request.scope.get("route")
    path = route_path_of(request.app, route, request.url.path) if route is not None else None
    return request.method.upper(), path or request.url.path


def _open_and_anonymous(request: Request, method: str, access: frozenset[str]) -> bool:
    """A read open to everyone whose answer shows nobody's name (the JSON API, an HTMX part):
    who calls changes nothing, so the session is not looked up and a public lookup costs one
    query, not two. A bearer token is still checked (a bad one gets its 401), and whole pages
    still resolve the user for their navigation bar."""
    return (
        PUBLIC in access
        and method in SAFE_METHODS
        and "authorization" not in request.headers
        and (request.url.path.startswith("/api/") or is_htmx(request))
    )


async def enforce_policy(request: Request, db: DbSession, clock: AppClock) -> None:
    """Applied to every route: the policy table first, then CSRF for state changes."""
    method, path = route_key(request)
    access = access_for(request.app.state.policy, method, path)
    if access is None:
        raise Problem(403, "no-policy", f"{method} {path} has no entry in the policy table")
    if _open_and_anonymous(request, method, access):
        return
    principal = await get_principal(request, db, clock)
    if not allows(access, principal.role):
        if principal.role is None:
            raise Problem(401, "not-signed-in", "sign in first, or send an API token")
        raise Problem(
            403,
            "role-not-allowed",
            f"{principal.name} ({principal.role}) may not call {method} {path}",
        )
    if method not in SAFE_METHODS and principal.via != "token":
        await check_csrf(request)


# --- sign-in and sign-out ----------------------------------------------------------------------

router = APIRouter(include_in_schema=False)


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute or scheme-relative URL (open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target:
        return "/"
    return target


def _login_page(
    request: Request, *, error: str, status: int, headers: dict[str, str] | None = None
) -> HTMLResponse:
    templates = request.app.state.templates
    response: HTMLResponse = templates.TemplateResponse(
        request,
        "login.html",
        {"csrf_token": csrf_for(request), "error": error},
        status_code=status,
        headers=headers,
    )
    return response


def sign_in(
    request: Request, response: Response, db: Session, user: UserView, clock: Clock
) -> None:
    """Start a server-side session for `user` and put its token in the response's cookie.

    A new token each time: a cookie planted before sign-in never becomes a signed-in session.
    """
    _, token = start_web_session(db, user=user, now=clock.now())
    set_session_cookie(request, response, token)


@router.post("/login", response_class=HTMLResponse, dependencies=[allow(EVERYONE)])
def login(
    request: Request,
    db: DbSession,
    clock: AppClock,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str | None, Form()] = None,
) -> Response:
    address = _client_address(request)
    now = clock.now()
    throttle = login_throttle(
        db,
        username=username,
        address=address,
        now=now,
        limit=LOGIN_FAILURE_LIMIT,
        window=LOGIN_FAILURE_WINDOW,
    )
    if throttle.blocked:
        minutes = max(1, (throttle.retry_after + 59) // 60)
        return _login_page(
            request,
            error=f"Too many failed sign-ins. Try again in {minutes} minutes.",
            status=429,
            headers={"Retry-After": str(throttle.retry_after)},
        )
    user = authenticate(db, username=username, password=password)
    if user is None:
        record_login_failure(db, username=username, address=address, now=now)
        return _login_page(request, error="Wrong username or password.", status=401)
    clear_login_failures(db, username=username, address=address)
    response = RedirectResponse(_safe_next(next), status_code=303)
    sign_in(request, response, db, user, clock)
    return response


@router.post("/logout", dependencies=[allow(EVERYONE)])
def logout(request: Request, db: DbSession) -> Response:
    token = session_cookie(request)
    if token is not None:
        end_web_session(db, token=token)
    response = RedirectResponse("/", status_code=303)
    # A fresh anonymous cookie, so the next form has a token that is not the old session's.
    set_session_cookie(request, response, secrets.token_urlsafe(32))
    return response
