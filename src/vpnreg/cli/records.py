"""`vpnreg lookup`, `vpnreg import`: reading and bulk-loading (the audit commands: cli/audit.py)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vpnreg.cli.registry_context import open_registry
from vpnreg.cli.runtime import EXIT_REFUSED, EXIT_USAGE, fail, say_error
from vpnreg.core.ipspace import PrefixError, parse_address
from vpnreg.core.legacy_csv import decode, parse_legacy_csv

#: Files shorter than this import too fast to need a progress bar.
PROGRESS_MIN_ROWS = 1000


def parse_time(text: str, option: str) -> dt.datetime:
    """An ISO 8601 / RFC 3339 time with its offset (a usage error otherwise)."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not an ISO 8601 time (e.g. 2026-01-15T09:00:00Z)", EXIT_USAGE)
    if value.tzinfo is None or value.utcoffset() is None:
        fail(f"{option} {text!r} needs a time zone offset (e.g. Z or +05:00)", EXIT_USAGE)
    return value.astimezone(dt.UTC)


def lookup(
    ip: Annotated[str, typer.Argument(help="An IPv4 or IPv6 address.")],
    port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="The domestic endpoint's port: an address an ISP bound with a port range "
            "(CGNAT) is registered only for ports inside it.",
        ),
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="Ask about this time (ISO 8601 with offset), not now.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Is this address registered now (or --at TIME), and by which registration?"""
    try:
        parse_address(ip)
    except PrefixError as err:
        fail(err.message, EXIT_USAGE)
    when = None if at is None else parse_time(at, "--at")
    from vpnreg.registry import services

    with open_registry() as reg:
        found = services.lookup(
            reg.session, address=ip, now=when or reg.now(), config=reg.config, port=port
        )
    binding = None
    if found.binding_ports is not None and found.binding_until is not None:
        binding = {
            "ports": list(found.binding_ports),
            "until": found.binding_until.isoformat().replace("+00:00", "Z"),
        }
    answer = {
        "ip": found.ip,
        "registered": found.registered,
        "registration_id": found.registration_id,
        "tracking_number": found.tracking_number,
        "category": found.category,
        "prefix": found.prefix,
        "valid_until": found.valid_until.isoformat() if found.valid_until else None,
        "binding": binding,
    }
    if as_json:
        typer.echo(json.dumps(answer, sort_keys=True))
    elif found.registered:
        bound = ""
        if binding is not None:
            lo, hi = binding["ports"]
            bound = f" (bound by its ISP, ports {lo}-{hi}, until {binding['until']})"
        typer.echo(
            f"{found.ip}: registered in {found.prefix}{bound} by {found.tracking_number} "
            f"({found.category}), valid until {found.valid_until}"
        )
    else:
        typer.echo(f"{found.ip}: not registered")


def import_csv(
    file: Annotated[Path, typer.Argument(help="Legacy registrations, CSV (see docs/cli.md).")],
    dry_run: Annotated[bool, typer.Option(help="Check everything, write nothing.")] = False,
) -> None:
    """Import legacy registrations, all or nothing: any bad row aborts the whole file."""
    try:
        data = file.read_bytes()
    except OSError as err:
        fail(f"{file}: cannot read ({err.strerror})", EXIT_USAGE)
    text, problem = decode(data)
    if text is None:
        assert problem is not None
        fail(f"{file}:{problem.line}: {problem.message} (bytes {problem.value})")
    rows, problems = parse_legacy_csv(text)
    if problems:
        for p in problems:
            say_error(f"{file}:{p.line}: {p.message}: {p.value!r}")
        raise typer.Exit(EXIT_REFUSED)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from vpnreg.registry import services

    # The bar shows only on a terminal; scripts and CI get the summary line alone.
    with (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(stderr=True),
            disable=not sys.stderr.isatty() or len(rows) < PROGRESS_MIN_ROWS,
            transient=True,
        ) as bar,
        open_registry() as reg,
    ):
        task = bar.add_task("checking", total=len(rows))

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        report = services.import_legacy(
            reg.session,
            rows=rows,
            now=reg.now(),
            config=reg.config,
            dry_run=dry_run,
            progress=progress,
        )
    if not report.ok:
        for q in report.problems:
            say_error(f"{file}:{q.line}: {q.field}: {q.message} [{q.code}]: {q.value!r}")
        say_error(f"{file}: {len(report.problems)} problems; nothing imported")
        raise typer.Exit(EXIT_REFUSED)
    verb = "would import" if dry_run else "imported"
    typer.echo(
        f"{file}: {verb} {report.created} registrations from {report.rows} rows "
        f"({report.organisations_created} new organisations, {report.isps_created} new ISPs)"
    )


def register(app: typer.Typer) -> None:
    app.command()(lookup)
    app.command("import")(import_csv)
