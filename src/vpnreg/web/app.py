"""The FastAPI application factory: `create_app(settings)` wires settings, the registry, the
policy table and every router (auth, the JSON API, the feed server, the portal pages)."""

from __future__ import annotations

import contextlib
import gc
import importlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from vpnreg import __version__
from vpnreg.clock import Clock, SystemClock
from vpnreg.registry.read_replica import ReplicaDatabase
from vpnreg.registry.services import ServiceConfig
from vpnreg.registry.services.documents import MAX_DOCUMENT_BYTES
from vpnreg.registry.services.lookup_index import LookupIndexHolder
from vpnreg.registry.services.unit_of_work import Database
from vpnreg.settings import Settings
from vpnreg.web.api.openapi import install_openapi
from vpnreg.web.auth import (
    SESSION_COOKIE,
    Principal,
    csrf_for,
    enforce_policy,
    ensure_session_cookie,
)
from vpnreg.web.feed import install_feed
from vpnreg.web.feed_fastpath import FeedFastPath
from vpnreg.web.headers import SecurityHeaders
from vpnreg.web.limits import BodyLimit
from vpnreg.web.lookup import rebuild_on_new_serial
from vpnreg.web.lookup_fastpath import IndexedLookup
from vpnreg.web.policy import EVERYONE, SAFE_METHODS, allow, build_policy
from vpnreg.web.portal.pages import templates
from vpnreg.web.problems import install_problem_handlers
from vpnreg.web.security import signing_key
from vpnreg.web.token_cache import TokenCache
from vpnreg.web.transparency import install_transparency

HERE = Path(__file__).resolve().parent

#: Modules whose `router` is included, in this order (each route declares its own access).
ROUTER_MODULES: tuple[str, ...] = (
    "vpnreg.web.auth",
    "vpnreg.web.api",
    "vpnreg.web.portal",
    "vpnreg.web.mode_announcements",
)

__all__ = ["ROUTER_MODULES", "SESSION_COOKIE", "create_app"]


class FeedNotifier:
    """After every successful state-changing request, ask the feed server to publish at once.

    One place instead of a call in each route: the API and the portal forms both change the
    registry through POSTs, and a gateway should see an approval within moments.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        status = 500

        async def watch(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, watch)
        feed = getattr(scope["app"].state, "feed", None) if "app" in scope else None
        if status < 400 and feed is not None:
            feed.notify_changed()


@contextlib.asynccontextmanager
async def _frozen_heap(_app: Any) -> AsyncIterator[None]:
    """Once started, move everything alive to the collector's permanent generation.

    What start-up leaves (modules, the app, mappers, compiled templates: most of the heap) is
    never garbage, yet every full collection walked it: about 100 ms on the loop's thread,
    stalling every request in flight, a few times a minute under load. Frozen, it is skipped;
    the shutdown unfreezes it, so an app started and stopped in a test leaves nothing pinned.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _router_modules(names: Sequence[str]) -> list[ModuleType]:
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as err:
            # Only the router module itself may be absent (a part not built yet); a missing
            # import inside it is a real error.
            if err.name != name:
                raise
    return modules


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    database: Database | None = None,
    read_database: ReplicaDatabase | None = None,
) -> FastAPI:
    """Build the web app. Refuses to build in production without a real secret key.

    `read_database` (default: one for `VPNREG_DATABASE_READ_URL` when set) is the read replica
    that answers the public reads (vpnreg.web.reads, ADR 0017)."""
    settings = settings or Settings()
    key = signing_key(settings)
    app = FastAPI(
        title="vpnreg",
        version=__version__,
        summary="Register VPN endpoints (public IP prefixes) through one window.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        swagger_ui_oauth2_redirect_url=None,
        redoc_url=None,
        dependencies=[Depends(enforce_policy)],
    )
    app.state.settings = settings
    app.state.signing_key = key
    app.state.clock = clock or SystemClock()
    app.state.database = database or Database(settings.database_url)
    if read_database is None and settings.database_read_url is not None:
        read_database = ReplicaDatabase(
            settings.database_read_url, primary_url=settings.database_url
        )
    app.state.read_database = read_database
    app.state.service_config = ServiceConfig.from_settings(settings)
    app.state.templates = templates
    app.state.document_dir = Path(settings.data_dir) / "documents"
    app.state.max_document_bytes = MAX_DOCUMENT_BYTES
    # the public lookup's index of the feed's registered set (web.lookup, ADR 0014)
    app.state.lookup_index = LookupIndexHolder()
    # API tokens checked moments ago (web.token_cache): no database per gateway request
    app.state.token_cache = TokenCache[Principal](settings.token_cache_s)
    install_problem_handlers(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get(
        "/", response_class=HTMLResponse, include_in_schema=False, dependencies=[allow(EVERYONE)]
    )
    def home(request: Request) -> Response:
        return templates.TemplateResponse(
            request,
            "home.html",
            {"current_user": getattr(request.state, "current_user", None)},
        )

    @app.get(
        "/login",
        response_class=HTMLResponse,
        include_in_schema=False,
        dependencies=[allow(EVERYONE)],
    )
    def login_form(request: Request, next: str | None = None) -> Response:
        response = HTMLResponse("")
        ensure_session_cookie(request, response)
        page = templates.TemplateResponse(
            request,
            "login.html",
            {"csrf_token": csrf_for(request), "error": None, "next": next},
        )
        for header, value in response.headers.items():
            if header == "set-cookie":
                page.headers.append(header, value)
        return page

    @app.get("/healthz", include_in_schema=False, dependencies=[allow(EVERYONE)])
    async def health() -> JSONResponse:
        body: dict[str, object] = {"status": "ok", "version": __version__}
        replica: ReplicaDatabase | None = app.state.read_database
        if replica is not None:
            # where the public reads go now, and how often the primary stood in (ADR 0017)
            body["read_replica"] = replica.health.status().to_json()
        return JSONResponse(body)

    # The feed first: a request is matched against the routes in order, and a thousand
    # gateways' long polls are most of the requests (bench_gateway_fanout).
    feed = install_feed(app, settings, clock=app.state.clock)
    rebuild_on_new_serial(app.state)
    modules = _router_modules(ROUTER_MODULES)
    for module in modules:
        router = getattr(module, "router", None)
        if router is not None:
            app.include_router(router)
    install_transparency(
        app, settings, database=app.state.database, key=feed.signing_key, clock=app.state.clock
    )
    # Last, so it runs after the other start-up steps (the feed's first publish included).
    app.include_router(APIRouter(lifespan=_frozen_heap))
    app.add_middleware(FeedNotifier)
    app.add_middleware(BodyLimit)
    # inside SecurityHeaders, so their answers carry them too
    app.add_middleware(IndexedLookup)
    app.add_middleware(FeedFastPath)
    app.add_middleware(SecurityHeaders)
    app.state.policy = build_policy(app)
    install_openapi(app)
    return app
