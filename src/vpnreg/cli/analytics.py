"""`vpnreg analytics export | QUERY`: gateway reports as day-partitioned Parquet, and the common
questions answered over those files with DuckDB (ADR 0015, docs/scaling.md).

`export --to DIR [--since DAY|Nd]` rewrites each day's partitions from the registry's database
(`Nd`: the last N days, today included, for a daily timer: deploy/vpnreg-analytics-export.*).
Each QUERY (blocks-per-protocol, registered-but-blocked, gateway-lag) reads only the files: it
needs no database and can run anywhere the directory is. A DIR with no exported data at all is
refused (exit 1: most likely the wrong directory); days without data in a range give an empty
answer (exit 0).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from vpnreg.analytics.queries import QUERIES, Query
from vpnreg.analytics.result import OutputFormat
from vpnreg.cli.runtime import EXIT_USAGE, clock, fail

analytics_app = typer.Typer(
    help="Gateway reports as Parquet files, and the common questions asked of them.",
    no_args_is_help=True,
)


def parse_day(text: str | None, option: str) -> dt.date | None:
    """A calendar day YYYY-MM-DD (a usage error otherwise)."""
    if text is None:
        return None
    try:
        if len(text) != len("YYYY-MM-DD"):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not a day (YYYY-MM-DD)", EXIT_USAGE)


def parse_since(text: str | None, today: dt.date) -> dt.date | None:
    """`--since`: a day YYYY-MM-DD, or `Nd` for the last N days with today (UTC) the Nth."""
    if text is not None and text.endswith("d") and text[:-1].isdigit():
        days = int(text[:-1])
        if not 1 <= days <= _MAX_DAYS_BACK:
            fail(f"--since {text!r}: N must be 1 to {_MAX_DAYS_BACK}", EXIT_USAGE)
        return today - dt.timedelta(days=days - 1)
    return parse_day(text, "--since")


#: `--since Nd` at most this many days back (longer: give the day itself).
_MAX_DAYS_BACK = 3660


@analytics_app.command("export")
def analytics_export(
    to: Annotated[Path, typer.Option("--to", help="The directory the Parquet files go under.")],
    since: Annotated[
        str | None,
        typer.Option(
            help="Rewrite the days from this one (YYYY-MM-DD, UTC), or `Nd`: the last N days "
            "(today included); default: every day."
        ),
    ] = None,
) -> None:
    """Write the gateway reports as Parquet, one partition per UTC day (counts by their hour's
    day, reports by their arrival day); each day present is rewritten whole and atomically."""
    first = parse_since(since, clock().now().astimezone(dt.UTC).date())
    if to.exists() and not to.is_dir():
        fail(f"{to}: not a directory", EXIT_USAGE)

    from vpnreg.analytics.export import export
    from vpnreg.cli.registry_context import open_registry

    with open_registry() as reg:
        try:
            to.mkdir(parents=True, exist_ok=True)
            summary = export(reg.session, to=to, since=first)
        except OSError as err:
            fail(f"{to}: cannot write ({err.strerror or err})")
    if not summary.days:
        typer.echo(
            f"no gateway reports{'' if first is None else f' since {first}'}; nothing written"
        )
        return
    typer.echo(
        f"wrote {len(summary.days)} day(s) {summary.days[0]}..{summary.days[-1]}: "
        f"{summary.count_rows} count rows, {summary.report_rows} reports, to {to}"
    )


def _query_command(query: Query) -> None:
    def command(
        data: Annotated[
            Path, typer.Option("--data", help="The directory `vpnreg analytics export` wrote.")
        ],
        first_day: Annotated[
            str | None, typer.Option("--from", help="First day (YYYY-MM-DD, UTC); default: all.")
        ] = None,
        last_day: Annotated[
            str | None, typer.Option("--to", help="Last day, included; default: all.")
        ] = None,
        kind: Annotated[
            OutputFormat, typer.Option("--format", help="table, csv or json.")
        ] = OutputFormat.TABLE,
    ) -> None:
        first = parse_day(first_day, "--from")
        last = parse_day(last_day, "--to")
        if first is not None and last is not None and first > last:
            fail(f"--from {first} is after --to {last}", EXIT_USAGE)

        from vpnreg.analytics.duckdb_runner import run
        from vpnreg.analytics.layout import has_data

        if not has_data(data):
            fail(f"{data}: no analytics data here (write it with `vpnreg analytics export`)")
        result = run(query, data=data, first_day=first, last_day=last)
        typer.echo(result.render(kind), nl=False)

    command.__doc__ = query.summary
    analytics_app.command(query.name)(command)


for _query in QUERIES.values():
    _query_command(_query)


def register(app: typer.Typer) -> None:
    app.add_typer(analytics_app, name="analytics")
