"""A real uvicorn server on a free port of 127.0.0.1 and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from tests.portal.world import PortalWorld, build_world, settings_for
from vpnreg.demo import load_demo
from vpnreg.registry import db, services
from vpnreg.settings import Settings
from vpnreg.web.app import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    world: PortalWorld


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The app on `settings` under uvicorn in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    world = build_world(tmp_path, dt.datetime.now(dt.UTC))
    with serving(world.settings) as base_url:
        yield LiveServer(base_url, world)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry holding the demo data (every role, applications in every state), served."""
    settings = settings_for(tmp_path_factory.mktemp("demo"))
    db.upgrade(settings.database_url)
    engine = db.make_engine(settings.database_url)
    try:
        with db.make_session_factory(engine)() as session:
            load_demo(
                session,
                config=services.ServiceConfig.from_settings(settings),
                now=dt.datetime.now(dt.UTC),
            )
            session.commit()
    finally:
        engine.dispose()
    with serving(settings) as base_url:
        yield base_url


def launch(p: Playwright) -> Browser:
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = launch(p)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def module_browser() -> Iterator[Browser]:
    """One Chromium for a whole module (the page walk opens a context per role)."""
    with sync_playwright() as p:
        chromium = launch(p)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class ConsoleLog:
    errors: list[str]


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, ConsoleLog]]:
    """A page that records every console error and uncaught exception; the test asserts none."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log = ConsoleLog(errors=[])

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            log.errors.append(f"console: {message.text} at {message.location}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: log.errors.append(f"page error: {exc}"))
    try:
        yield page, log
    finally:
        context.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
