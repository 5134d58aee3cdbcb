"""Charts drawn on the server with matplotlib (docs/adr/0013): a `statistics_figures.Figure`
as inline SVG for a page, or as a matplotlib figure for the monthly report's PDF.

Agg and the SVG/PDF back ends only, with the fonts matplotlib ships (DejaVu Sans): nothing is
fetched, nothing depends on the fonts of the machine. The SVG carries no width or height, only
its viewBox, so CSS scales it to its container; it is one image to assistive technology
(role="img" with the figure's title as its name), and the table beside it holds the numbers.
matplotlib is not thread-safe, and the web server renders from a thread pool: every drawing
holds one lock. Equal figures draw equal charts, so rendered SVG is cached by figure.
"""

from __future__ import annotations

import functools
import html
import io
import math
import re
import threading
from collections.abc import Sequence

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure as Canvas
from matplotlib.ticker import MaxNLocator

from vpnreg.web.statistics_figures import Figure, Series

matplotlib.use("Agg")
matplotlib.rcParams.update(
    {
        "font.family": "DejaVu Sans",
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlesize": 10,
        "legend.frameon": False,
        "legend.fontsize": 9,
        # ids derived from a fixed salt: the same figure gives byte-identical SVG
        "svg.hashsalt": "vpnreg-statistics",
        "svg.fonttype": "path",
        # TrueType fonts in the PDF keep its text extractable (and searchable)
        "pdf.fonttype": 42,
    }
)

#: Okabe and Ito's palette, told apart with any colour vision (yellow left out: too light).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
#: Chart size in inches; the SVG scales, so this sets its proportions and the size of its text
#: relative to its width: narrow enough that 10 pt text stays legible on a 390 px phone.
SIZE = (5.0, 3.4)
#: The turnaround's panels stack, one per stage.
PANEL_HEIGHT = 1.7
_MAX_TICKS = 6
_LOCK = threading.Lock()


def draw(figure: Figure, size: tuple[float, float] = SIZE) -> Canvas:
    """The chart of `figure` as a matplotlib figure. Takes no lock: the page draws through
    svg(), which holds it; the monthly report draws in its one thread."""
    if not figure.x_labels or all(v is None for s in figure.series for v in s.values):
        canvas = Canvas(figsize=size, layout="constrained")
        _no_data(canvas.add_subplot())
        return canvas
    if figure.kind == "panels":
        size = (size[0], PANEL_HEIGHT * len({s.group for s in figure.series}) + 0.8)
        canvas = Canvas(figsize=size, layout="constrained")
        _panels(canvas, figure)
        return canvas
    canvas = Canvas(figsize=size, layout="constrained")
    ax = canvas.add_subplot()
    if figure.kind == "hbars":
        _hbars(ax, figure)
        return canvas
    if figure.kind == "lines":
        _lines(ax, figure.x_labels, figure.series)
    else:
        _stacked(ax, figure.x_labels, figure.series)
    ax.set_ylabel(figure.y_label)
    if len(figure.series) > 1:
        canvas.legend(loc="outside lower center", ncols=min(3, len(figure.series)))
    return canvas


def _no_data(ax: Axes) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, "No data in this period", ha="center", va="center", transform=ax.transAxes)


def _values(series: Series) -> list[float]:
    return [math.nan if v is None else v for v in series.values]


def _x_axis(ax: Axes, labels: Sequence[str], most: int = _MAX_TICKS) -> None:
    """At most `most` labels; dates shortened to month-day (the period names the year)."""
    step = max(1, math.ceil(len(labels) / most))
    positions = list(range(0, len(labels), step))
    ax.set_xticks(positions, [_short(labels[i]) for i in positions])
    ax.set_xlim(-0.6, len(labels) - 0.4)


def _short(label: str) -> str:
    return label[5:] if re.fullmatch(r"\d{4}-\d{2}-\d{2}", label) else label


def _counts_axis(ax: Axes) -> None:
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def _lines(ax: Axes, labels: Sequence[str], series: Sequence[Series]) -> None:
    x = range(len(labels))
    marker = "o" if len(labels) <= 16 else None
    for index, one in enumerate(series):
        ax.plot(x, _values(one), color=PALETTE[index % len(PALETTE)], marker=marker, label=one.name)
    _x_axis(ax, labels)
    _counts_axis(ax)
    ax.set_ylim(top=max(1.0, ax.get_ylim()[1]))


def _stacked(ax: Axes, labels: Sequence[str], series: Sequence[Series]) -> None:
    x = range(len(labels))
    bottom = [0.0] * len(labels)
    for index, one in enumerate(series):
        values = [0.0 if v is None else v for v in one.values]
        ax.bar(
            x, values, bottom=bottom, width=0.8, color=PALETTE[index % len(PALETTE)], label=one.name
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    _x_axis(ax, labels)
    _counts_axis(ax)
    ax.set_ylim(top=max(1.0, max(bottom) * 1.05))


def _hbars(ax: Axes, figure: Figure) -> None:
    values = figure.series[0].values
    y = range(len(figure.x_labels))
    ax.barh(y, [v or 0.0 for v in values], color=PALETTE[0], height=0.6)
    ax.set_yticks(list(y), list(figure.x_labels))
    ax.invert_yaxis()
    percent = figure.y_label == "per cent"
    top = 100.0 if percent else max(1.0, *(v or 0.0 for v in values))
    ax.set_xlim(0, top * 1.18)
    ax.set_xlabel(figure.y_label)
    if percent:
        ax.set_xticks([0, 25, 50, 75, 100])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True, min_n_ticks=1))
    for position, value in zip(y, values, strict=True):
        text = "n/a" if value is None else f"{value:g}" + (" %" if percent else "")
        ax.text((value or 0.0) + top * 0.01, position, text, va="center", fontsize=9)


def _panels(canvas: Canvas, figure: Figure) -> None:
    groups = list(dict.fromkeys(s.group for s in figure.series))
    axes = canvas.subplots(len(groups), 1, sharex=True, squeeze=False).flatten()
    for ax, group in zip(axes, groups, strict=True):
        members = [s for s in figure.series if s.group == group]
        ax.set_title(group, loc="left")
        for one in members:
            ax.plot(
                range(len(figure.x_labels)),
                _values(one),
                color=PALETTE[1] if one.dashed else PALETTE[0],
                linestyle="--" if one.dashed else "-",
                marker="o",
                markersize=3,
                label=one.name,
            )
        _x_axis(ax, figure.x_labels)
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", color="#dddddd", linewidth=0.6)
        ax.set_ylabel(figure.y_label)
    handles, names = axes[0].get_legend_handles_labels()
    canvas.legend(handles, names, loc="outside lower center", ncols=2)


@functools.lru_cache(maxsize=64)
def svg(figure: Figure) -> str:
    """The chart as an <svg> element for inline use: scalable, one named image."""
    with _LOCK:
        canvas = draw(figure)
        out = io.StringIO()
        canvas.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    return _inline(out.getvalue(), figure)


def _presentation(match: re.Match[str]) -> str:
    """A style attribute as presentation attributes (fill="…" stroke-width="…")."""
    declarations = (d.split(":", 1) for d in match.group(1).split(";") if ":" in d)
    return " ".join(f'{name.strip()}="{value.strip()}"' for name, value in declarations)


def _inline(document: str, figure: Figure) -> str:
    """matplotlib's SVG document made an inline element: no XML prologue or metadata, no fixed
    size, ids prefixed by the figure's slug (several charts share one page), an accessible name.

    The portal's Content-Security-Policy allows no inline style (style-src 'self'), which
    would leave every shape black: matplotlib's style attributes and its one <style> rule
    become SVG presentation attributes, which CSP does not govern."""
    body = document[document.index("<svg") :]
    body = re.sub(r"<metadata>.*?</metadata>\s*", "", body, flags=re.DOTALL)
    body = re.sub(r"<style[^>]*>.*?</style>\s*", "", body, flags=re.DOTALL)
    body = re.sub(r'style="([^"]*)"', _presentation, body)
    prefix = figure.slug + "-"
    body = re.sub(r'\bid="', f'id="{prefix}', body)
    body = re.sub(r"url\(#", f"url(#{prefix}", body)
    body = re.sub(r'href="#', f'href="#{prefix}', body)
    head_end = body.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", body[:head_end])
    name = html.escape(figure.title, quote=True)
    return (
        f'{head} class="chart" role="img" aria-label="{name}" focusable="false"'
        ' stroke-linejoin="round" stroke-linecap="butt">'
        f"<title>{name}</title>{body[head_end + 1 :]}"
    )
