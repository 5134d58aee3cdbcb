"""`vpnreg outbox`: the notification e-mails queued by state changes (nothing is sent here)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vpnreg.cli.registry_context import open_registry


def outbox(
    application: Annotated[
        str | None,
        typer.Option("--application", "-a", help="Only this application (id or tracking number)."),
    ] = None,
    unsent: Annotated[bool, typer.Option("--unsent", help="Only messages not yet sent.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    show_body: Annotated[bool, typer.Option("--body", help="Print each message's text.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List the outbox, newest first."""
    from vpnreg.registry.services.outbox import list_outbox

    with open_registry() as reg:
        app_id = reg.application(application).id if application else None
        items = list_outbox(reg.session, application_id=app_id, unsent_only=unsent, limit=limit)
    for item in items:
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "id": item.id,
                        "created_at": item.created_at.isoformat(),
                        "event": item.event,
                        "application_id": item.application_id,
                        "recipient": item.recipient,
                        "subject": item.subject,
                        "body": item.body,
                        "sent_at": item.sent_at.isoformat() if item.sent_at else None,
                    }
                )
            )
            continue
        status = "sent" if item.sent_at else "queued"
        stamp = item.created_at.strftime("%Y-%m-%d %H:%M")
        typer.echo(f"{item.id:>6}  {stamp}  {status:<6}  {item.recipient:<16}  {item.subject}")
        if show_body:
            typer.echo("")
            typer.echo(item.body)
    if not items and not as_json:
        typer.echo("the outbox is empty", err=True)


def register(app: typer.Typer) -> None:
    app.command()(outbox)
