"""`vpnreg feed ...`: the signed allowlist feed, from keys to gateway pulls and exports."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from vpnreg.cli.runtime import EXIT_USAGE, fail

feed_app = typer.Typer(help="The signed allowlist feed.", no_args_is_help=True)


@feed_app.command("export")
def export(
    fmt: Annotated[
        str,
        typer.Option("--format", help="json, txt, nft, ipset, suricata-iprep or zeek-intel."),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of standard output.")
    ] = None,
) -> None:
    """Export the set registered now (published or not) as plain, unsigned data for other tools."""
    from vpnreg.cli.registry_context import open_registry
    from vpnreg.core.exporters import MAIN_FILE, ExportFormat, file_suffixes, render
    from vpnreg.registry import services

    try:
        chosen = ExportFormat(fmt)
    except ValueError:
        choices = ", ".join(f.value for f in ExportFormat)
        fail(f"unknown export format {fmt!r}; choose one of {choices}", EXIT_USAGE)
    if out is None and len(file_suffixes(chosen)) > 1:
        fail(f"--format {chosen} writes several files: give --out FILE", EXIT_USAGE)
    with open_registry() as reg:
        now = reg.now()
        entries = services.registered_entries(reg.session, now=now, config=reg.config)
    # Whole seconds: docs/exporters.md's headers say `2026-01-15T09:00:00Z`, and the CLI's clock
    # (the system's) has microseconds.
    files = render(chosen, entries, generated=now.astimezone(dt.UTC).replace(microsecond=0))
    if out is None:
        typer.echo(files[MAIN_FILE], nl=False)
        return
    for suffix, content in files.items():
        target = out.with_name(out.name + suffix)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.replace(target)
    typer.echo(f"exported {len(entries)} entries to {out}", err=True)


def register(app: typer.Typer) -> None:
    from vpnreg.cli import feed_client, feed_server

    feed_client.register(feed_app)
    feed_server.register(feed_app)
    app.add_typer(feed_app, name="feed")
