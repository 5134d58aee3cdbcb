"""The statistics page's charts in Chromium (issue 19), on the demo registry: at 390 and 1280 px
every chart fits its card and the page does not scroll sideways, with every data table unfolded
the page passes axe-core, and the charts are drawn in their colours under the portal's CSP
(which refuses inline style: matplotlib's style attributes would leave every shape black)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, ConsoleMessage

from tests.e2e.test_look import SCREENSHOTS, WIDTHS, blocking_violations, overflow

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_charts_fit_phone_and_desktop_and_pass_axe_with_tables_open(
    demo_server: str, module_browser: Browser
) -> None:
    context = module_browser.new_context()
    page = context.new_page()
    console: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console.append(message.text)

    page.on("console", on_console)
    problems: list[str] = []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.goto(demo_server + "/stats")
        charts = page.locator("figure.chart-figure svg.chart")
        assert charts.count() == 5
        for index in range(charts.count()):
            chart = charts.nth(index)
            box = chart.bounding_box()
            card = page.locator("figure.chart-figure").nth(index).bounding_box()
            assert box is not None and card is not None
            if box["width"] > card["width"] or box["x"] + box["width"] > width:
                problems.append(f"chart {index} at {width}px: {box['width']} px wide")
            name_ = chart.get_attribute("aria-label")
            assert name_ and chart.get_attribute("role") == "img"
        # the figure's background patch: white, not the black of a shape with no fill
        fill = page.evaluate("getComputedStyle(document.querySelector('svg.chart path')).fill")
        assert fill == "rgb(255, 255, 255)"
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        if (extra := overflow(page)) > 0:
            problems.append(f"{width}px: the page is {extra} px wider than the window")
        problems += [f"{width}px: {v}" for v in blocking_violations(page)]
        page.screenshot(path=str(SCREENSHOTS / f"stats-charts-open-{name}.png"), full_page=True)
    context.close()
    assert problems == []
    assert console == []
