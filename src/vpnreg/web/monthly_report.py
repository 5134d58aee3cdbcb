"""The monthly report (`vpnreg report`): the statistics page's figures over one calendar month,
as one self-contained HTML file (the charts inline, each with its table) or as a PDF drawn by
matplotlib's PDF back end (each chart on a page, its table on the next), no browser needed.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure as Canvas

from vpnreg.core.statistics import DAY
from vpnreg.registry.services.stats import Statistics
from vpnreg.web.charts import draw, svg
from vpnreg.web.statistics_figures import Cell, Figure, figures

# The report's own template sits apart from the portal's: it is a file read without the
# server, so it carries its style inline, which the portal's templates never do (CSP,
# tests/web/test_headers.py). It shares the figure macro with the statistics page.
_ENV = Environment(
    loader=ChoiceLoader(
        [PackageLoader("vpnreg.web", "report_templates"), PackageLoader("vpnreg.web", "templates")]
    ),
    autoescape=select_autoescape(default=True),
)
#: A4 portrait, in inches.
PAGE = (8.27, 11.69)
#: Table rows per PDF page (a month's days fit on one).
ROWS_PER_PAGE = 40


def _title(stats: Statistics) -> str:
    return f"VPN registry: monthly report {stats.period.label}"


def report_html(stats: Statistics) -> str:
    """One HTML file holding every chart (inline SVG) and its data table, unfolded."""
    shown = figures(stats)
    return _ENV.get_template("monthly_report.html").render(
        period=stats.period,
        last_day=stats.period.end - DAY,
        as_of=f"{stats.as_of:%Y-%m-%d %H:%M}",
        charts=[(figure, svg(figure)) for figure in shown],
    )


def report_pdf(stats: Statistics) -> bytes:
    """A PDF: a cover page, then per figure its chart and its table."""
    out = io.BytesIO()
    metadata = {"Title": _title(stats), "Subject": "Aggregate statistics", "Creator": "vpnreg"}
    with PdfPages(out, metadata=metadata) as pdf:
        pdf.savefig(_cover(stats))
        for figure in figures(stats):
            pdf.savefig(_chart_page(figure))
            for page in _table_pages(figure):
                pdf.savefig(page)
    return out.getvalue()


def _cover(stats: Statistics) -> Canvas:
    page = Canvas(figsize=PAGE)
    lines = [
        (0.90, _title(stats), 18, "bold"),
        (0.86, f"UTC days {stats.period.start} to {stats.period.end - DAY}", 11, "normal"),
        (0.835, f"Figures taken {stats.as_of:%Y-%m-%d %H:%M} UTC", 11, "normal"),
        (
            0.79,
            "Counts and durations only: no organisation, person or address is named.",
            10,
            "normal",
        ),
    ]
    for y, text, size, weight in lines:
        page.text(0.08, y, text, fontsize=size, fontweight=weight)
    for n, figure in enumerate(figures(stats)):
        page.text(0.08, 0.72 - n * 0.03, f"{n + 1}. {figure.title}", fontsize=11)
    return page


def _chart_page(figure: Figure) -> Canvas:
    chart = draw(
        figure, size=(PAGE[0], PAGE[0] * 0.75 if figure.kind != "panels" else PAGE[1] * 0.8)
    )
    chart.suptitle(figure.title, fontsize=13, fontweight="bold", x=0.02, ha="left")
    return chart


def _table_pages(figure: Figure) -> list[Canvas]:
    rows: Sequence[tuple[Cell, ...]] = figure.rows or (
        ("No data in this period",) + ("",) * (len(figure.columns) - 1),
    )
    pages = []
    for start in range(0, len(rows), ROWS_PER_PAGE):
        page = Canvas(figsize=PAGE)
        page.text(0.06, 0.95, f"{figure.title}: data", fontsize=13, fontweight="bold")
        page.text(0.06, 0.935, textwrap.fill(figure.description, 110), fontsize=8, va="top")
        ax = page.add_axes((0.06, 0.05, 0.88, 0.85))
        ax.set_axis_off()
        chunk = rows[start : start + ROWS_PER_PAGE]
        table = ax.table(
            cellText=[["–" if c is None else str(c) for c in row] for row in chunk],
            colLabels=list(figure.columns),
            loc="upper center",
            cellLoc="left",
        )
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        table.scale(1, 1.2)
        pages.append(page)
    return pages
