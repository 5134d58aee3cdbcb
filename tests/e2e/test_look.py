"""Every portal page of every role, in Chromium at a desktop and a phone width (issue 15).

On the demo registry (applications in every state), each role signs in once and walks its
pages: list pages, a detail page reached from the list, its forms and the error pages it can
meet. At 1280 and 390 px wide every page must fit the window (no sideways scrolling) and pass
axe-core with no serious or critical violation; a full-page screenshot of each is kept under
test-artifacts/screenshots/. Then the error pattern: a failed form shows "There is a problem",
focused, linking to the field, which is marked aria-invalid and described by its message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect

from vpnreg.demo import DEMO_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
BLOCKING = {"serious", "critical"}
EXPECTED_4XX = "Failed to load resource: the server responded with a status of 4"

#: role -> demo login (None: not signed in)
LOGINS = {
    "anonymous": None,
    "applicant": "applicant1",
    "isp": "isp1",
    "sector_body": "sector1",
    "regulator": "regulator1",
    "auditor": "auditor",
    "admin": "admin",
    # Demo organisation 50 and ISP 5 hold a registration whose attestation was withdrawn.
    "suspended_applicant": "applicant50",
    "suspending_isp": "isp5",
}

#: role -> pages it visits: (name, path, status expected); "{queue}" / "{application}" stand for
#: the first item its list page links to, "{suspended-…}" for the first suspended one.
PAGES: dict[str, list[tuple[str, str, int]]] = {
    "anonymous": [
        ("home", "/", 200),
        ("sign-in", "/login", 200),
        ("sign-up", "/signup", 200),
        ("lookup", "/lookup?ip=192.0.2.1", 200),
        ("lookup-bad", "/lookup?ip=garbage", 422),
        ("status", "/status", 200),
        ("status-unknown", "/status?tracking_number=VPN-1999-000001", 404),
        ("stats", "/stats", 200),
        ("mode-changes", "/mode-changes", 200),
        ("not-found", "/nonexistent", 404),
    ],
    "applicant": [
        ("home", "/", 200),
        ("applications", "/applications", 200),
        ("application", "{application}", 200),
        ("apply", "/apply", 200),
        ("profile", "/profile", 200),
        ("status", "/status", 200),
        ("someone-elses", "/applications/999999", 404),
        ("forbidden", "/queue", 403),
    ],
    "isp": [("queue", "/queue", 200), ("review", "{queue}", 200), ("forbidden", "/apply", 403)],
    "sector_body": [("queue", "/queue", 200), ("review", "{queue}", 200)],
    "regulator": [
        ("queue", "/queue", 200),
        ("review", "{queue}", 200),
        ("stats", "/stats", 200),
        ("missing-review", "/queue/999999", 404),
        ("gateways", "/gateways", 200),
        ("explain", "/explain", 200),
    ],
    "auditor": [
        ("home", "/", 200),
        ("stats", "/stats", 200),
        ("explain", "/explain", 200),
        ("forbidden", "/queue", 403),
    ],
    "admin": [
        ("users", "/admin/users", 200),
        ("gateways", "/gateways", 200),
        ("forbidden", "/apply", 403),
    ],
    "suspended_applicant": [("application-suspended", "{suspended-application}", 200)],
    "suspending_isp": [
        ("queue-with-suspended", "/queue", 200),
        ("review-suspended", "{suspended-queue}", 200),
    ],
}


def sign_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("#username", username)
    page.fill("#password", DEMO_PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


def first_link(page: Page, base_url: str, list_path: str, prefix: str, row: str = "") -> str:
    """The first link to `prefix`… on `list_path` (in a table row holding `row`, if given)."""
    page.goto(base_url + list_path)
    scope = f"main tr:has({row})" if row else "main"
    href = page.locator(f"{scope} a[href^='{prefix}']").first.get_attribute("href")
    assert href, f"{list_path} links to no {prefix}…"
    return href


def overflow(page: Page) -> int:
    """How many pixels the page is wider than the window (0 when it fits)."""
    width: int = page.evaluate(
        "Math.max(0, document.documentElement.scrollWidth - window.innerWidth)"
    )
    return width


def blocking_violations(page: Page) -> list[str]:
    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in BLOCKING
    ]


@pytest.fixture
def role_context(module_browser: Browser) -> Iterator[BrowserContext]:
    context = module_browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context
    finally:
        context.close()


@pytest.mark.parametrize("role", list(PAGES))
def test_every_page_fits_a_phone_and_passes_axe(
    role: str, demo_server: str, role_context: BrowserContext
) -> None:
    page = role_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))

    def on_console(message: ConsoleMessage) -> None:
        # Chromium logs a 4xx answer as a failed load: expected on the error pages visited.
        if message.type == "error" and not message.text.startswith(EXPECTED_4XX):
            errors.append(f"console: {message.text}")

    page.on("console", on_console)
    username = LOGINS[role]
    if username:
        sign_in(page, demo_server, username)
    links = {
        "{queue}": lambda: first_link(page, demo_server, "/queue", "/queue/"),
        "{application}": lambda: first_link(page, demo_server, "/applications", "/applications/"),
        "{suspended-application}": lambda: first_link(
            page, demo_server, "/applications", "/applications/", ".badge.suspended"
        ),
        "{suspended-queue}": lambda: first_link(
            page, demo_server, "/queue", "/queue/", ".badge.suspended"
        ),
    }
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    for name, path, status in PAGES[role]:
        url = demo_server + (links[path]() if path in links else path)
        for width_name, (width, height) in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            response = page.goto(url)
            assert response is not None
            where = f"{role} {name} ({url}) at {width}px"
            if response.status != status:
                problems.append(f"{where}: status {response.status}, expected {status}")
            if not response.headers.get("content-type", "").startswith("text/html"):
                problems.append(f"{where}: {response.headers.get('content-type')}, not a page")
            if (extra := overflow(page)) > 0:
                problems.append(f"{where}: {extra} px wider than the window")
            problems += [f"{where}: {v}" for v in blocking_violations(page)]
            shot = SCREENSHOTS / f"{role}-{name}-{width_name}.png"
            page.screenshot(path=str(shot), full_page=True)
    print(f"screenshots of {role}'s pages in {SCREENSHOTS}")
    assert problems == []
    assert errors == []


def test_error_pages_say_what_happened_and_offer_a_way_back(
    demo_server: str, role_context: BrowserContext
) -> None:
    page = role_context.new_page()
    response = page.goto(demo_server + "/nonexistent")
    assert response is not None and response.status == 404
    assert page.locator("h1").inner_text() == "Page not found"
    assert page.locator("main a[href='/']").count() == 1
    sign_in(page, demo_server, "applicant1")
    response = page.goto(demo_server + "/nonexistent")
    assert response is not None and response.status == 404
    # No route ran its policy check, yet the navigation is still the signed-in applicant's.
    assert page.get_by_role("button", name="Sign out (applicant1)").count() == 1
    response = page.goto(demo_server + "/queue")
    assert response is not None and response.status == 403
    assert page.locator("h1").inner_text() == "You cannot use this page"
    # The policy's wording ("... may not call GET /queue") is for machines, not shown.
    assert "GET /queue" not in page.locator("main").inner_text()
    assert "role-not-allowed" in (
        page.locator("[data-problem]").get_attribute("data-problem") or ""
    )


def test_machines_keep_problem_json(demo_server: str) -> None:
    with httpx.Client(base_url=demo_server) as client:
        api = client.get("/api/v1/applications/999999", headers={"Accept": "text/html"})
        assert api.headers["content-type"] == "application/problem+json"
        assert api.json()["status"] in (401, 404)
        unknown = client.get("/nonexistent", headers={"Accept": "application/json"})
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/problem+json"
        assert unknown.json()["code"] == "not-found"


def test_a_failed_form_shows_the_error_summary_focused_and_linked(
    demo_server: str, role_context: BrowserContext
) -> None:
    page = role_context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(demo_server + "/signup")
    page.fill("#s-name", "Summary Test Software House")
    page.select_option("#s-category", "software_house")
    page.fill("#s-user", "summary-test")
    page.fill("#s-pass", "long-enough-password")
    page.click("#signup-form button[type=submit]")
    summary = page.locator("[data-error-summary]")
    # The portal's script focuses the summary and marks the fields once the page has loaded.
    expect(summary).to_be_focused()
    assert summary.locator("h2").inner_text() == "There is a problem"
    assert summary.get_attribute("role") == "alert"
    link = summary.locator("a[href='#s-reg']")
    assert link.inner_text().startswith("Registration number: ")
    assert "registration_number" not in summary.inner_text()
    field = page.locator("#s-reg")
    expect(field).to_have_attribute("aria-invalid", "true")
    described_by = (field.get_attribute("aria-describedby") or "").split()
    assert "s-reg-error" in described_by
    assert page.locator("#s-reg-error").text_content() == (
        "Error: Organisations give a registration number"
    )
    assert overflow(page) == 0
    link.click()
    expect(field).to_be_focused()
    assert blocking_violations(page) == []
    page.screenshot(path=str(SCREENSHOTS / "anonymous-sign-up-failed-phone.png"), full_page=True)


def test_skip_link_leads_to_the_main_content(
    demo_server: str, role_context: BrowserContext
) -> None:
    page = role_context.new_page()
    page.goto(demo_server + "/")
    page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    expect(skip).to_be_focused()
    assert skip.inner_text() == "Skip to main content"
    skip.press("Enter")
    expect(page.locator("#main")).to_be_focused()


def test_a_bad_prefix_row_is_linked_and_marked_on_the_apply_form(
    demo_server: str, role_context: BrowserContext
) -> None:
    page = role_context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, demo_server, "applicant1")
    page.goto(demo_server + "/apply")
    page.select_option("#isp_id", index=1)
    page.fill("#prefix-1", "10.0.0.0/8")
    page.fill("#peers-1", "not-a-peer")
    page.get_by_role("button", name="Continue").click()
    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_focused()
    texts = summary.locator("a").all_inner_texts()
    assert any(t.startswith("Prefix 1: ") for t in texts), texts
    assert any(t.startswith("Peers of prefix 1: ") for t in texts), texts
    assert "peers[" not in summary.inner_text() and "row 1" not in summary.inner_text()
    for field in ("#prefix-1", "#peers-1"):
        element = page.locator(field)
        expect(element).to_have_attribute("aria-invalid", "true")
        assert (element.get_attribute("aria-describedby") or "").split()[0] == f"{field[1:]}-error"
    # The live prefix check keeps its place in the description.
    assert "prefix-check-1" in (page.locator("#prefix-1").get_attribute("aria-describedby") or "")
    assert overflow(page) == 0
    assert blocking_violations(page) == []
    page.screenshot(path=str(SCREENSHOTS / "applicant-apply-failed-phone.png"), full_page=True)


def test_the_home_lookup_answer_stays_in_its_card_on_a_phone(
    demo_server: str, role_context: BrowserContext
) -> None:
    page = role_context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(demo_server + "/")
    for address in ("2001:db8:0:ffff:ffff:ffff:ffff:ffff", "192.0.2.1", "garbage"):
        page.fill("#ip", address)
        page.get_by_role("button", name="Check").click()
        # Wait for this address's answer, not the previous one still in the box.
        expect(page.locator("#lookup-answer")).to_contain_text(address)
        card = page.locator("#lookup-answer").evaluate(
            "el => [el.closest('.card').getBoundingClientRect().right,"
            " Math.max(...[...el.querySelectorAll('*')].map(c => c.getBoundingClientRect().right))]"
        )
        assert card[1] <= card[0], (address, card)
        assert overflow(page) == 0
    # The bad address is marked on the box it was typed in, then cleared by the next answer.
    # (set by the portal's script after the swap: waited for, not read at once)
    expect(page.locator("#ip")).to_have_attribute("aria-invalid", "true")
    page.screenshot(path=str(SCREENSHOTS / "anonymous-home-lookup-phone.png"), full_page=True)
    page.fill("#ip", "192.0.2.1")
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#lookup-answer .result")).to_contain_text("192.0.2.1")
    expect(page.locator("#ip")).not_to_have_attribute("aria-invalid", "true")


def test_the_bulk_confirmation_page_fits_and_passes_axe(
    demo_server: str, role_context: BrowserContext
) -> None:
    page = role_context.new_page()
    sign_in(page, demo_server, "isp1")
    problems: list[str] = []
    for width_name, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.goto(demo_server + "/queue")
        page.locator("#queue-items input[type=checkbox]").first.check()
        page.get_by_role("button", name="Review decision…").click()
        page.wait_for_url(re.compile(r"/queue/bulk$"))
        assert page.locator("h1").inner_text().startswith("Confirm: ")
        if (extra := overflow(page)) > 0:
            problems.append(f"bulk confirmation at {width}px: {extra} px too wide")
        problems += [f"bulk confirmation at {width}px: {v}" for v in blocking_violations(page)]
        page.screenshot(
            path=str(SCREENSHOTS / f"isp-bulk-confirm-{width_name}.png"), full_page=True
        )
    assert problems == []


def test_the_protocol_change_forms_fit_and_pass_axe(
    demo_server: str, role_context: BrowserContext
) -> None:
    """Issue 17: the applicant's "Change VPN protocols" form and the waiting change, then the
    regulator's review page with its approve and refuse buttons, at both widths."""
    page = role_context.new_page()
    sign_in(page, demo_server, "applicant1")
    href = first_link(page, demo_server, "/applications", "/applications/", row=".badge.active")
    page.goto(demo_server + href)
    page.check("#amend-protocol-wireguard")
    page.locator("#amend-protocols button[type=submit]").click()
    page.wait_for_url(re.compile(r"done=protocols_requested"))
    expect(page.locator("#pending-protocols")).to_contain_text("wireguard")
    problems: list[str] = []

    def look(name: str) -> None:
        for width_name, (width, height) in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            if (extra := overflow(page)) > 0:
                problems.append(f"{name} at {width}px: {extra} px too wide")
            problems.extend(f"{name} at {width}px: {v}" for v in blocking_violations(page))
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{width_name}.png"), full_page=True)

    look("applicant-protocol-change")
    page.context.clear_cookies()
    sign_in(page, demo_server, "regulator1")
    page.goto(demo_server + href.replace("/applications/", "/queue/"))
    expect(page.locator("#protocol-amendment")).to_contain_text("wireguard")
    look("regulator-protocol-change")
    page.get_by_role("button", name="Approve protocol change").click()
    expect(page.locator("#protocols")).to_have_text("wireguard")
    assert problems == []


def test_the_explain_answer_fits_and_passes_axe(
    demo_server: str, role_context: BrowserContext
) -> None:
    """Issue 19: the regulator explains an address of the demo gateways' unregistered /24; the
    answer (the registry's, then each gateway's verdicts) at both widths, and an empty one."""
    page = role_context.new_page()
    sign_in(page, demo_server, "regulator1")
    page.goto(demo_server + "/explain")
    page.fill("#target", "198.51.100.7")
    page.locator("form[action='/explain'] button[type=submit]").click()
    expect(page.locator("#explain-rows")).to_contain_text("gw-khi-1")
    expect(page.locator("#explain-answer")).to_contain_text("was not registered")
    problems: list[str] = []

    def look(name: str) -> None:
        for width_name, (width, height) in WIDTHS.items():
            page.set_viewport_size({"width": width, "height": height})
            if (extra := overflow(page)) > 0:
                problems.append(f"{name} at {width}px: {extra} px too wide")
            problems.extend(f"{name} at {width}px: {v}" for v in blocking_violations(page))
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{width_name}.png"), full_page=True)

    look("regulator-explain-answer")
    page.fill("#target", "2001:db8:ffff::1")
    page.locator("form[action='/explain'] button[type=submit]").click()
    expect(page.locator("#explain-empty")).to_contain_text("no reports mention this address")
    look("regulator-explain-empty")
    page.goto(demo_server + "/mode-changes")
    expect(page.locator("main")).to_contain_text("wireguard: enforce → dry-run (trial)")
    expect(page.locator("main")).to_contain_text("planned end")
    assert problems == []
