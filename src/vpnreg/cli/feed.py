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
    since: Annotated[
        int | None,
        typer.Option(
            "--since",
            min=1,
            help="nft only: publish, then write only the element changes from this feed serial "
            "to the new one (load over the sets that serial's export left).",
        ),
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
    if since is not None:
        if chosen is not ExportFormat.NFT:
            fail("--since is for --format nft only", EXIT_USAGE)
        _export_nft_changes(since, out)
        return
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


def _export_nft_changes(since: int, out: Path | None) -> None:
    """`feed export --format nft --since SERIAL`: publish, so that the feed's serial names the
    set registered now, then write the changes from SERIAL's sets to the new serial's."""
    from vpnreg.cli.registry_context import open_registry
    from vpnreg.core.exporters import render_nft_changes
    from vpnreg.core.feed import merge_deltas
    from vpnreg.registry import services

    with open_registry() as reg:
        now = reg.now()
        services.publish(reg.session, now=now, config=reg.config)
        history = services.current_feed(reg.session)
    if history is None:  # pragma: no cover - publish always stores a feed
        fail("the feed was not published")
    steps = history.delta_since(since)
    if steps is None:
        kept = history.deltas[0].previous_serial if history.deltas else history.serial
        fail(
            f"serial {since} cannot be reached from the feed (session {history.session_id}, "
            f"serial {history.serial}, changes kept since serial {kept}): load a full "
            "`vpnreg feed export --format nft` instead"
        )
    current = history.entries
    if steps:
        step = merge_deltas(steps)
        earlier = current.apply(added=step.removed, removed=step.added)
    else:
        earlier = current
    what = f"serial {since} to serial {history.serial} of feed session {history.session_id}"
    stamp = now.astimezone(dt.UTC).replace(microsecond=0)
    text, deleted, created = render_nft_changes(
        earlier.to_entries(), current.to_entries(), generated=stamp, what=what
    )
    summary = f"nft changes from {what}: {deleted} elements deleted, {created} created"
    if out is None:
        typer.echo(text, nl=False)
    else:
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
        summary += f" -> {out}"
    typer.echo(summary, err=True)


def register(app: typer.Typer) -> None:
    from vpnreg.cli import feed_client, feed_server

    feed_client.register(feed_app)
    feed_server.register(feed_app)
    app.add_typer(feed_app, name="feed")
