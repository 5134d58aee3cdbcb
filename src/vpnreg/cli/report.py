"""`vpnreg report --month YYYY-MM --format html|pdf [--out FILE]`: the monthly report.

The public statistics' figures restricted to one calendar month (UTC days), as HTML with the
charts inline or as PDF; written whole to FILE (atomically) or to standard output.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vpnreg.cli.runtime import EXIT_USAGE, fail


class ReportFormat(StrEnum):
    HTML = "html"
    PDF = "pdf"


def report(
    month: Annotated[str, typer.Option(help="The calendar month, YYYY-MM (UTC days).")],
    kind: Annotated[
        ReportFormat, typer.Option("--format", help="html (charts inline) or pdf.")
    ] = ReportFormat.HTML,
    out: Annotated[
        Path | None, typer.Option(help="Write the report here (default: standard output).")
    ] = None,
) -> None:
    """Write the monthly report: registrations in force, review turnaround, decision shares,
    gateways' feed freshness and blocked VPN flows of one month, each chart with its table."""
    from vpnreg.core.statistics import PeriodError, month_period

    try:
        period = month_period(month)
    except PeriodError as err:
        fail(str(err), EXIT_USAGE)
    if out is not None and not out.parent.is_dir():
        fail(f"{out.parent}: no such directory", EXIT_USAGE)

    from vpnreg.cli.registry_context import open_registry
    from vpnreg.files import write_atomic
    from vpnreg.registry.services.stats import statistics
    from vpnreg.web.monthly_report import report_html, report_pdf

    with open_registry() as reg:
        stats = statistics(reg.session, period=period, now=reg.now())
    data = report_pdf(stats) if kind is ReportFormat.PDF else report_html(stats).encode()
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        write_atomic(out, data)
    except OSError as err:
        fail(f"{out}: cannot write ({err.strerror})")
    typer.echo(f"wrote the {period.label} report ({kind.value}, {len(data)} bytes) to {out}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
