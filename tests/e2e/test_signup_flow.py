"""Sign-up to a submitted application in a real browser, with the HTMX enhancements: the inline
prefix check, "add more rows" without a reload, Enter submitting the form, the lookup answered
in place, and the organisation profile edited."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ConsoleLog, LiveServer
from tests.e2e.test_full_flow import snap

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_sign_up_then_apply_with_inline_checks_and_enter_to_submit(
    live_server: LiveServer, page: tuple[Page, ConsoleLog], shots: Path
) -> None:
    browser_page, console = page
    base = live_server.base_url

    browser_page.goto(f"{base}/")
    browser_page.get_by_role("navigation", name="Main").get_by_role("link", name="Sign up").click()
    browser_page.get_by_label("Organisation name").fill("Quetta Software House")
    browser_page.get_by_label("Category").select_option("software_house")
    browser_page.get_by_label("Registration number (companies)").fill("0456789")
    browser_page.get_by_label("Username").fill("quetta")
    browser_page.get_by_label("Password (at least 8 characters)").fill("a good long password")
    snap(browser_page, shots, "10-signup")
    browser_page.get_by_role("button", name="Create account").click()
    expect(browser_page.get_by_role("status")).to_contain_text("Welcome!")
    expect(browser_page.get_by_role("button", name="Sign out (quetta)")).to_be_visible()
    expect(browser_page.get_by_role("heading", level=1)).to_have_text("New application")

    # Inline validation while typing (HTMX GET /apply/check-prefix).
    first = browser_page.get_by_label("Prefix 1", exact=True)
    first.fill("10.0.0.0/8")
    expect(browser_page.locator("#prefix-check-1")).to_contain_text("✗")
    first.fill("192.0.2.0/28")
    expect(browser_page.locator("#prefix-check-1")).to_contain_text("valid public prefix")

    # Two more rows without a reload: the typed value stays, rows 4 and 5 appear.
    browser_page.get_by_role("button", name="Add more prefix rows").click()
    expect(browser_page.get_by_label("Prefix 5", exact=True)).to_be_visible()
    expect(first).to_have_value("192.0.2.0/28")
    browser_page.get_by_label("Your internet service provider").select_option(
        label=live_server.world.isp_name
    )
    browser_page.get_by_label("Prefix 5", exact=True).fill("198.51.100.64/28")
    snap(browser_page, shots, "11-apply-inline-checks")

    # Enter in a field takes the form's first submit button: Continue, to check the answers.
    browser_page.get_by_label("Prefix 5", exact=True).press("Enter")
    expect(browser_page.get_by_role("heading", level=1)).to_contain_text("Check your answers")
    browser_page.get_by_role("button", name="Submit application").click()
    expect(browser_page.get_by_role("status")).to_contain_text("submitted")
    heading = browser_page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("submitted")
    prefixes = browser_page.locator("table").first
    expect(prefixes).to_contain_text("192.0.2.0/28")
    expect(prefixes).to_contain_text("198.51.100.64/28")
    snap(browser_page, shots, "12-signup-application-submitted")

    # The organisation profile, edited.
    browser_page.get_by_role("link", name="Organisation").click()
    browser_page.get_by_label("Organisation name").fill("Quetta Software House (Pvt) Ltd")
    browser_page.get_by_role("button", name="Save details").click()
    expect(browser_page.get_by_role("status")).to_have_text("Organisation details saved.")
    expect(browser_page.get_by_role("heading", level=1)).to_have_text(
        "Quetta Software House (Pvt) Ltd"
    )
    snap(browser_page, shots, "13-profile")

    # The lookup answers in place (HTMX fragment), without leaving the home page.
    browser_page.goto(f"{base}/")
    browser_page.get_by_label("IP address").fill("192.0.2.1")
    browser_page.get_by_role("button", name="Check").click()
    expect(browser_page.locator("#lookup-result")).to_contain_text("Not registered")
    assert browser_page.url == f"{base}/"
    snap(browser_page, shots, "14-lookup-inline")

    assert console.errors == []
