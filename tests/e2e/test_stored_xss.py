"""Stored XSS: hostile text put in through the real services and API renders as text everywhere.

On a live server, an organisation is named with the payloads (as an administrator would), its
applicant files an application with a document whose file name is a payload, the ISP rejects it
with a payload reason and the applicant appeals with a payload text; a peer field with a payload
goes through the apply form, and another organisation is named with them at sign-up. Then every
role opens every page that shows them in Chromium: no dialog opens, nothing logs a console error,
no element the payload would inject exists, and the payload text is there, literally. (The CSP
refuses inline script, so a dialog alone would prove little: the check that no injected element
exists is what fails if a template stops escaping.)
"""

from __future__ import annotations

import datetime as dt
import re
from contextlib import closing
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page

from tests.e2e.conftest import LiveServer
from tests.portal.world import PASSWORD
from vpnreg.core.review import Role
from vpnreg.registry import db, services

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
JS_URL = "javascript:alert(1)"
TEMPLATE = "{{7*7}}"
TEXTAREA = "</textarea><svg onload=alert(1)>"
EVERY = f"{SCRIPT} {IMG} {JS_URL} {TEMPLATE} {TEXTAREA}"
ORG_NAME = f"Acme {SCRIPT} {IMG} {TEMPLATE}"
#: Without the quote: a multipart encoder (httpx, as browsers) sends `"` in a file name as %22.
FILE_NAME = f"<img src=x onerror=alert(1)>{TEMPLATE}.pdf"
REASON = f"Reason {EVERY}"
APPEAL = f"Appeal {EVERY}"
#: Elements or attributes a payload would have injected had it been parsed as markup.
INJECTED = "script:not([src]):not([nonce]), img[onerror], svg[onload], a[href^='javascript:' i]"
EXPECTED_4XX = "Failed to load resource: the server responded with a status of 4"


@dataclass(frozen=True)
class Planted:
    base_url: str
    application: int
    tracking_number: str


def _client(base_url: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url)
    page = client.get("/login").text
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert match is not None
    signed_in = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": match.group(1)}
    )
    assert signed_in.status_code == 303, signed_in.text
    client.headers["X-CSRF-Token"] = client.get("/api/v1/me").json()["csrf_token"]
    return client


def _step(client: httpx.Client, app_id: int, action: str, body: dict[str, str] | None) -> None:
    etag = client.get(f"/api/v1/applications/{app_id}").headers["ETag"]
    response = client.post(
        f"/api/v1/applications/{app_id}/{action}", json=body, headers={"If-Match": etag}
    )
    assert response.status_code in (200, 201), response.text


@pytest.fixture
def planted(live_server: LiveServer) -> Planted:
    world = live_server.world
    engine = db.make_engine(world.url)
    config = services.ServiceConfig.from_settings(world.settings)
    stamp = dt.datetime.now(dt.UTC)
    try:
        with db.make_session_factory(engine)() as session:
            org = services.create_organisation(
                session,
                name=ORG_NAME,
                category="software_house",
                actor="cli:admin",
                now=stamp,
                config=config,
            )
            services.create_user(
                session,
                username="mallory",
                password=PASSWORD,
                role=Role.APPLICANT,
                actor="cli:admin",
                now=stamp,
                organisation_id=org.id,
            )
            services.create_user(
                session,
                username="auditor1",
                password=PASSWORD,
                role=Role.AUDITOR,
                actor="cli:admin",
                now=stamp,
            )
            session.commit()
    finally:
        engine.dispose()
    base = live_server.base_url
    with closing(_client(base, "mallory")) as mallory, closing(_client(base, "noc")) as noc:
        created = mallory.post(
            "/api/v1/applications",
            json={"isp_id": world.isp_id, "prefixes": [{"prefix": "198.51.100.0/28", "peers": []}]},
        )
        assert created.status_code == 201, created.text
        app_id = int(created.json()["id"])
        uploaded = mallory.post(
            f"/api/v1/applications/{app_id}/documents",
            files={"file": (FILE_NAME, b"%PDF-1.4\n%x\n%%EOF\n")},
            data={"kind": "lease"},
        )
        assert uploaded.status_code == 201, uploaded.text
        assert uploaded.json()["filename"] == FILE_NAME
        _step(mallory, app_id, "submit", None)
        _step(noc, app_id, "reject", {"reason_code": "not_subscriber", "reason": REASON})
        _step(mallory, app_id, "appeal", {"text": APPEAL})
        tracking = str(mallory.get(f"/api/v1/applications/{app_id}").json()["tracking_number"])
    return Planted(base, app_id, tracking)


def _open(browser: Browser, base_url: str, username: str | None) -> tuple[Page, list[str]]:
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith(EXPECTED_4XX):
            problems.append(f"console: {message.text}")

    def on_dialog(dialog: Dialog) -> None:
        problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("dialog", on_dialog)
    if username is not None:
        page.goto(f"{base_url}/login")
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        page.click("form[action='/login'] button[type=submit]")
        page.wait_for_url(re.compile(r"^(?!.*/login).*$"))
    return page, problems


def _visit(page: Page, url: str, shown: list[str]) -> list[str]:
    """Open `url`; what is wrong with it (injected elements, payloads not shown literally)."""
    page.goto(url)
    page.wait_for_load_state("networkidle")
    wrong = []
    injected = page.locator(INJECTED).count()
    if injected:
        wrong.append(f"{url}: {injected} injected elements")
    text = page.locator("body").inner_text()
    wrong += [f"{url}: does not show {p!r} literally" for p in shown if p not in text]
    return wrong


def test_payloads_render_as_text_on_every_page_of_every_role(
    planted: Planted, browser: Browser
) -> None:
    base = planted.base_url
    app = f"/applications/{planted.application}"
    review = f"/queue/{planted.application}"
    # who -> (path, payloads that page must show)
    visits: dict[str | None, list[tuple[str, list[str]]]] = {
        "mallory": [
            ("/applications", []),
            (app, [ORG_NAME, FILE_NAME, REASON, APPEAL]),
            ("/profile", [ORG_NAME]),
            ("/apply", [ORG_NAME]),
        ],
        "noc": [("/queue", []), (review, [ORG_NAME, FILE_NAME, REASON, APPEAL]), (app, [ORG_NAME])],
        "pasha": [(app, [ORG_NAME, REASON, APPEAL])],
        "reg1": [
            ("/queue", []),
            (review, [ORG_NAME, FILE_NAME, REASON, APPEAL]),
            (app, [ORG_NAME]),
        ],
        "auditor1": [(app, [ORG_NAME, REASON, APPEAL]), ("/stats", [])],
        "admin": [("/admin/users", []), (app, [ORG_NAME])],
        # The public pages show no stored free text; their reflected inputs get the payloads.
        None: [
            (f"/status?tracking_number={planted.tracking_number}", []),
            (f"/status?tracking_number={quote(EVERY)}", []),
            (f"/lookup?ip={quote(EVERY)}", []),
            ("/stats", []),
        ],
    }
    wrong: list[str] = []
    for who, pages in visits.items():
        page, problems = _open(browser, base, who)
        try:
            for path, shown in pages:
                wrong += [f"{who}: {w}" for w in _visit(page, base + path, shown)]
        finally:
            page.context.close()
        wrong += [f"{who}: {p}" for p in problems]
    assert wrong == []


def test_a_payload_in_a_peer_field_comes_back_as_text(planted: Planted, browser: Browser) -> None:
    page, problems = _open(browser, planted.base_url, "mallory")
    try:
        page.goto(f"{planted.base_url}/apply")
        page.select_option("#isp_id", index=1)
        page.locator("input[name='prefix']").first.fill("198.51.100.32/28")
        page.locator("input[name='peers']").first.fill(TEXTAREA + IMG)
        page.click("#apply-form button[value=check]")
        page.wait_for_load_state("networkidle")
        assert page.locator(INJECTED).count() == 0
        assert page.locator("input[name='peers']").first.input_value() == TEXTAREA + IMG
    finally:
        page.context.close()
    assert problems == []


def test_an_organisation_named_by_sign_up_renders_as_text(
    live_server: LiveServer, browser: Browser
) -> None:
    base = live_server.base_url
    name = f"Signup {TEXTAREA} {SCRIPT} {JS_URL}"
    page, problems = _open(browser, base, None)
    try:
        page.goto(f"{base}/signup")
        page.fill("#s-name", name)
        page.select_option("#s-category", "software_house")
        page.fill("#s-reg", "0099999")
        page.fill("#s-user", "signup-mallory")
        page.fill("#s-pass", PASSWORD)
        page.click("main form button[type=submit]")
        page.wait_for_url(re.compile(r".*/apply\?done=signed_up$"))
        wrong = _visit(page, f"{base}/apply", [name])
        wrong += _visit(page, f"{base}/profile", [name])
        wrong += _visit(page, f"{base}/applications", [name])
    finally:
        page.context.close()
    assert wrong + problems == []
