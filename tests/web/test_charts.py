"""web.charts: matplotlib's SVG made fit for an inline, CSP-bound, accessible page element."""

from __future__ import annotations

import re

import pytest

from vpnreg.web import charts
from vpnreg.web.statistics_figures import Figure, Series


def _figure(kind: str = "lines", **over: object) -> Figure:
    values: dict[str, object] = {
        "slug": "test-chart",
        "title": 'Flows & "blocks" <today>',
        "description": "A test.",
        "kind": kind,
        "x_labels": ("2026-01-01", "2026-01-02", "2026-01-03"),
        "series": (Series("wireguard", (1.0, 3.0, 2.0)), Series("openvpn", (0.0, None, 4.0))),
        "y_label": "flows",
        "columns": ("Day", "wireguard", "openvpn"),
        "rows": (),
    }
    values.update(over)
    return Figure(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["lines", "stacked", "hbars", "panels"])
def test_the_svg_is_an_inline_named_scalable_image_without_inline_style(kind: str) -> None:
    figure = _figure(kind)
    if kind == "panels":
        figure = _figure(
            kind,
            series=(
                Series("median", (1.0, 2.0, None), group="A"),
                Series("90th percentile", (2.0, 5.0, None), group="A", dashed=True),
                Series("median", (4.0, None, 1.0), group="B"),
            ),
        )
    svg = charts.svg(figure)
    root = re.match(r"<svg[^>]*>", svg)
    assert root is not None, svg[:80]
    tag = root.group(0)
    assert 'role="img"' in tag and "viewBox=" in tag
    assert 'aria-label="Flows &amp; &quot;blocks&quot; &lt;today&gt;"' in tag
    assert not re.search(r'\s(width|height)="', tag)
    assert "<title>Flows &amp; &quot;blocks&quot; &lt;today&gt;</title>" in svg
    # the portal's CSP refuses inline style: none is left, as attribute or element
    assert "style=" not in svg and "<style" not in svg and "<?xml" not in svg
    assert 'fill="#ffffff"' in svg  # the background, as a presentation attribute
    ids = re.findall(r'\bid="([^"]+)"', svg)
    assert ids and all(i.startswith("test-chart-") for i in ids)
    assert len(ids) == len(set(ids))
    references = re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', svg)
    assert {a or b for a, b in references} <= set(ids)


def test_equal_figures_draw_identical_svg() -> None:
    figure = _figure()
    first = charts.svg(figure)
    charts.svg.cache_clear()
    assert charts.svg(figure) == first


@pytest.mark.parametrize(
    "figure",
    [
        pytest.param(_figure(series=()), id="no-series"),
        pytest.param(_figure(series=(Series("share", (None, None, None)),)), id="no-values"),
        pytest.param(_figure(x_labels=(), series=()), id="no-days"),
    ],
)
def test_a_figure_without_data_draws_one_empty_panel(figure: Figure) -> None:
    canvas = charts.draw(figure)
    assert len(canvas.axes) == 1 and not canvas.axes[0].axison
    assert [t.get_text() for t in canvas.axes[0].texts] == ["No data in this period"]
