"""The FastAPI application factory: `create_app(settings)` wires settings, templates and routes."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from vpnreg import __version__
from vpnreg.settings import Settings
from vpnreg.web.security import csrf_token, signing_key

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "vpnreg_session"


def _session_id(request: Request) -> tuple[str, bool]:
    """The visitor's session id from its cookie, or a new one (True when new)."""
    current = request.cookies.get(SESSION_COOKIE)
    if current and 16 <= len(current) <= 128:
        return current, False
    return secrets.token_urlsafe(32), True


def _remember(response: Response, session_id: str, *, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE, session_id, httponly=True, samesite="lax", secure=secure, path="/"
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the web app. Refuses to build in production without a real secret key."""
    settings = settings or Settings()
    key = signing_key(settings)
    app = FastAPI(
        title="vpnreg",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.signing_key = key
    templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    secure_cookies = settings.is_production

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request) -> Response:
        return templates.TemplateResponse(request, "home.html", {})

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request) -> Response:
        session_id, new = _session_id(request)
        response = templates.TemplateResponse(
            request, "login.html", {"csrf_token": csrf_token(key, session_id), "error": None}
        )
        if new:
            _remember(response, session_id, secure=secure_cookies)
        return response

    @app.get("/healthz", include_in_schema=False)
    def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    return app
