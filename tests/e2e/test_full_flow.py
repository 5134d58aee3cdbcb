"""The whole flow in a real browser: apply with two prefixes, ISP verifies, sector body endorses,
regulator approves, and the public lookup shows the address as registered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ConsoleLog, LiveServer
from tests.portal.world import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def snap(page: Page, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name=f"Sign out ({username})")).to_be_visible()


def sign_out(page: Page, username: str) -> None:
    page.get_by_role("button", name=f"Sign out ({username})").click()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Sign in")).to_be_visible()


def decide(
    page: Page, base: str, shots: Path, user: str, button: str, step: str, done: str
) -> None:
    sign_in(page, base, user)
    page.goto(f"{base}/queue")
    row = page.get_by_role("row").filter(has_text="203.0.113.0/28")
    expect(row).to_have_count(1)
    snap(page, shots, f"{step}-queue")
    row.get_by_role("link").click()
    expect(page.locator("#findings")).to_contain_text("no overlap with registered space")
    snap(page, shots, f"{step}-review")
    page.get_by_role("button", name=button).click()
    expect(page.get_by_role("status")).to_contain_text(re.compile(rf"Application VPN-\S+ {done}"))
    expect(page.get_by_role("row").filter(has_text="203.0.113.0/28")).to_have_count(0)
    sign_out(page, user)


def test_apply_verify_endorse_approve_then_lookup_says_registered(
    live_server: LiveServer, page: tuple[Page, ConsoleLog], shots: Path
) -> None:
    browser_page, console = page
    base = live_server.base_url

    browser_page.goto(f"{base}/")
    snap(browser_page, shots, "01-home")
    sign_in(browser_page, base, "ali")
    browser_page.goto(f"{base}/apply")
    browser_page.get_by_label("Your internet service provider").select_option(
        label=live_server.world.isp_name
    )
    browser_page.get_by_label("Prefix 1", exact=True).fill("203.0.113.0/28")
    browser_page.get_by_label("Peers of prefix 1 (optional)").fill("198.51.100.10/32")
    browser_page.get_by_label("Prefix 2", exact=True).fill("2001:db8:10::/48")
    snap(browser_page, shots, "02-apply-form")
    browser_page.get_by_role("button", name="Continue").click()
    expect(browser_page.get_by_role("heading", level=1)).to_contain_text("Check your answers")
    browser_page.get_by_role("button", name="Submit application").click()
    expect(browser_page.get_by_role("status")).to_contain_text("submitted")
    expect(browser_page.get_by_role("heading", level=1)).to_contain_text("submitted")
    tracking = browser_page.locator("h1 .mono").inner_text()
    snap(browser_page, shots, "03-application-submitted")
    sign_out(browser_page, "ali")

    verify = "Verify (prefixes are this subscriber's)"
    decide(browser_page, base, shots, "noc", verify, "04-isp", "verified")
    decide(browser_page, base, shots, "pasha", "Endorse", "05-sector", "endorsed")
    decide(browser_page, base, shots, "reg1", "Approve", "06-regulator", "approved; valid until")

    browser_page.goto(f"{base}/status?tracking_number={tracking}")
    timeline = browser_page.locator("ol.timeline")
    for label in ("Submitted", "Verified by the ISP", "Endorsed", "Approved", "active"):
        expect(timeline).to_contain_text(label)
    snap(browser_page, shots, "07-public-status")

    browser_page.goto(f"{base}/")
    browser_page.get_by_label("IP address").fill("203.0.113.7")
    browser_page.get_by_role("button", name="Check").click()
    result = browser_page.locator("#lookup-result")
    expect(result).to_contain_text("Registered")
    expect(result).to_contain_text("software house")
    expect(result).not_to_contain_text("Lahore Code Works")
    snap(browser_page, shots, "08-lookup-registered")

    browser_page.goto(f"{base}/stats")
    expect(browser_page.get_by_role("heading", level=1)).to_have_text("Registry statistics")
    snap(browser_page, shots, "09-stats")

    assert console.errors == []
