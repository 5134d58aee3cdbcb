"""In a real browser: a reviewer downloads an applicant's document from the review page, and the
check-your-answers page refuses a prefix overlapping registered space (issue 15 items 2 and 4)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ConsoleLog, LiveServer
from tests.e2e.test_full_flow import sign_in, sign_out, snap
from tests.e2e.test_look import WIDTHS, blocking_violations, overflow
from vpnreg.registry import db, services
from vpnreg.registry.models import User

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PDF = b"%PDF-1.4\n% sector body certificate\n%%EOF\n"


def _register_for_the_bank(server: LiveServer, prefix: str) -> None:
    """Indus Bank's registration of `prefix`, through the registry services as the CLI would."""
    config = services.ServiceConfig.from_settings(server.world.settings)
    now = dt.datetime.now(dt.UTC)
    engine = db.make_engine(server.world.url)
    try:
        with db.make_session_factory(engine)() as session:
            users = {u.username: u for u in session.query(User).all()}
            app = services.apply_for_registration(
                session, organisation_id=server.world.bank_org_id, isp_id=server.world.isp_id,
                prefixes=[(prefix, [])], submit=True, actor=users["bina"], now=now, config=config,
            )  # fmt: skip
            for action, who in (("verify", "noc"), ("approve", "reg1")):
                step = services.StepRequest(action=action, application_id=app.id, actor=users[who])
                app = services.take_step(session, step, now=now, config=config)
            assert app.state == "active"
    finally:
        engine.dispose()


def _fits_and_passes_axe(page: Page) -> list[str]:
    """The page at a desktop and a phone width: no sideways scrolling, no serious or critical
    axe-core violation (the look walk's checks, for the pages this flow reaches)."""
    problems = []
    for width, height in WIDTHS.values():
        page.set_viewport_size({"width": width, "height": height})
        if (extra := overflow(page)) > 0:
            problems.append(f"{page.url} at {width}px: {extra} px too wide")
        problems += [f"{page.url} at {width}px: {v}" for v in blocking_violations(page)]
    page.set_viewport_size({"width": 1280, "height": 900})
    return problems


def _continue(page: Page, server: LiveServer, prefix: str) -> None:
    page.goto(f"{server.base_url}/apply")
    page.get_by_label("Your internet service provider").select_option(label=server.world.isp_name)
    page.get_by_label("Prefix 1", exact=True).fill(prefix)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Check your answers")


def test_a_reviewer_downloads_the_document_of_an_application_under_review(
    live_server: LiveServer, page: tuple[Page, ConsoleLog], shots: Path, tmp_path: Path
) -> None:
    browser_page, console = page
    base = live_server.base_url
    sign_in(browser_page, base, "ali")
    _continue(browser_page, live_server, "203.0.113.0/28")
    expect(browser_page.locator("#findings")).to_contain_text("valid public prefix")
    snap(browser_page, shots, "issue15-01-check-your-answers")
    assert _fits_and_passes_axe(browser_page) == []
    browser_page.get_by_role("button", name="Submit application").click()
    expect(browser_page.get_by_role("status")).to_contain_text("submitted")
    app_url = browser_page.url.split("?")[0]
    certificate = tmp_path / "certificate.pdf"
    certificate.write_bytes(PDF)
    browser_page.get_by_label("Document", exact=True).select_option(label="Sector body certificate")
    browser_page.get_by_label("File (PDF or PNG)").set_input_files(str(certificate))
    browser_page.get_by_role("button", name="Upload").click()
    expect(browser_page.get_by_role("status")).to_contain_text("Document uploaded")
    sign_out(browser_page, "ali")

    sign_in(browser_page, base, "noc")
    app_id = re.sub(r".*/applications/(\d+)$", r"\1", app_url)
    browser_page.goto(f"{base}/queue/{app_id}")
    link = browser_page.get_by_role("link", name="Sector body certificate: certificate.pdf")
    expect(link).to_be_visible()
    snap(browser_page, shots, "issue15-02-review-page-documents")
    assert _fits_and_passes_axe(browser_page) == []
    with browser_page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "certificate.pdf"
    saved = tmp_path / "downloaded.pdf"
    download.save_as(saved)
    assert saved.read_bytes() == PDF
    sign_out(browser_page, "noc")
    assert console.errors == []


def test_check_your_answers_refuses_a_prefix_overlapping_registered_space(
    live_server: LiveServer, page: tuple[Page, ConsoleLog], shots: Path
) -> None:
    browser_page, console = page
    _register_for_the_bank(live_server, "198.51.100.0/24")
    sign_in(browser_page, live_server.base_url, "ali")
    _continue(browser_page, live_server, "198.51.100.0/28")
    blocking = browser_page.locator("#blocking")
    expect(blocking).to_be_visible()
    expect(blocking).to_contain_text(
        "198.51.100.0/28 overlaps 198.51.100.0/24, which is already registered"
    )
    expect(browser_page.get_by_role("button", name="Submit application")).to_have_count(0)
    snap(browser_page, shots, "issue15-03-check-your-answers-refused")
    assert _fits_and_passes_axe(browser_page) == []
    browser_page.get_by_role("button", name="Withdraw this draft").click()
    expect(browser_page.get_by_role("status")).to_contain_text("withdrawn")
    assert console.errors == []
