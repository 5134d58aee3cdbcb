"""The public statistics page's charts (issue 19): each a <figure> with its caption, an SVG
named for assistive technology and scaled by its viewBox, its data as a table, and the same
figures as JSON and CSV for download."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import uuid

from fastapi.testclient import TestClient

from tests.portal.forms import apply, sign_in
from tests.portal.world import PortalWorld
from vpnreg.clock import FrozenClock
from vpnreg.core.gateway_report import CountKey, FeedApplied, Report
from vpnreg.registry.services.gateway_reports import store_report

SLUGS = (
    "registrations-in-force",
    "review-turnaround",
    "decision-shares",
    "feed-freshness",
    "blocked-flows",
)


def _blocked(client: TestClient, when: dt.datetime, counts: dict[str, int]) -> None:
    hour = when.replace(minute=0, second=0, microsecond=0)
    report = Report(
        report_id=uuid.uuid4().hex,
        gateway_id="gw-1",
        created=when,
        mode="nftables",
        feed=FeedApplied("a" * 32, 1, "b" * 64),
        counts=tuple(
            (CountKey(hour, protocol, "unregistered"), flows) for protocol, flows in counts.items()
        ),
    )
    with client.app.state.database.session() as session:  # type: ignore[attr-defined]
        assert store_report(session, report=report, token_name="gw", now=when)


def test_the_page_shows_five_accessible_charts_each_with_its_table(
    client: TestClient, clock: FrozenClock
) -> None:
    _blocked(client, clock.now() - dt.timedelta(days=1), {"wireguard": 12, "openvpn": 3})
    page = client.get("/stats")
    assert page.status_code == 200
    html = page.text
    figures = re.findall(r'<figure class="card chart-figure" id="([^"]+)"', html)
    assert tuple(figures) == SLUGS
    for slug in SLUGS:
        block = html.split(f'id="{slug}"', 1)[1].split("</figure>", 1)[0]
        assert f'<figcaption id="{slug}-caption">' in block
        svg_tag = re.search(r"<svg[^>]*>", block)
        assert svg_tag is not None, slug
        tag = svg_tag.group(0)
        assert 'role="img"' in tag and re.search(r'aria-label="[^"]+"', tag)
        assert "viewBox=" in tag and " width=" not in tag and " height=" not in tag
        assert "<details>" in block and "<table>" in block and '<th scope="col">' in block
        assert f'href="/stats/{slug}.csv"' in block
    # several charts in one page: no id twice
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    assert 'href="/stats.json"' in html
    blocked = html.split('id="blocked-flows"', 1)[1].split("</figure>", 1)[0]
    yesterday = (clock.now() - dt.timedelta(days=1)).date().isoformat()
    assert f'<th scope="row">{yesterday}</th><td>3</td><td>12</td><td>15</td>' in blocked


def test_json_and_csv_hold_the_same_figures_as_the_page(
    client: TestClient, world: PortalWorld, clock: FrozenClock
) -> None:
    sign_in(client, "ali")
    apply(client, world, "203.0.113.0/28")
    client.cookies.clear()
    _blocked(client, clock.now(), {"wireguard": 7})
    data = client.get("/stats.json")
    assert data.status_code == 200 and data.headers["content-type"] == "application/json"
    body = data.json()
    assert tuple(body["figures"]) == SLUGS
    assert body["period"]["label"] == "last 90 days"
    assert body["period"]["end"] == (clock.now().date() + dt.timedelta(days=1)).isoformat()
    for slug in SLUGS:
        answer = client.get(f"/stats/{slug}.csv")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        assert f'filename="vpnreg-{slug}.csv"' in answer.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(answer.text)))
        figure = body["figures"][slug]
        assert rows[0] == figure["columns"]
        assert rows[1:] == [["" if c is None else str(c) for c in row] for row in figure["rows"]]
    blocked = body["figures"]["blocked-flows"]
    assert blocked["columns"] == ["Day", "wireguard", "Total"]
    assert blocked["rows"][-1] == [clock.now().date().isoformat(), 7, 7]
    assert len(blocked["rows"]) == 90


def test_an_unknown_figure_is_a_404_problem(client: TestClient) -> None:
    answer = client.get("/stats/no-such-chart.csv")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert "no-such-chart" in answer.json()["detail"]
