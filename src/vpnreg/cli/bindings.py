"""`vpnreg bindings history` (who held an address when) and `vpnreg maintenance` (retention)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

from vpnreg.cli.records import parse_time
from vpnreg.cli.registry_context import open_registry
from vpnreg.cli.workflow import Actor

bindings_app = typer.Typer(help="Addresses ISPs bound to their subscribers.", no_args_is_help=True)


@bindings_app.command("history")
def history(
    address: Annotated[str, typer.Argument(help="An IPv4 or IPv6 address.")],
    start: Annotated[str, typer.Option("--from", help="From this time (ISO 8601 with offset).")],
    end: Annotated[str, typer.Option("--to", help="Up to this time (ISO 8601 with offset).")],
    actor: Actor,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Which registration held ADDRESS (and which port range) when, through its ISP's bindings.

    For the regulator and auditors; every read is recorded in the audit log."""
    since, until = parse_time(start, "--from"), parse_time(end, "--to")
    from vpnreg.registry.services.binding_history import binding_history

    with open_registry() as reg:
        rows = binding_history(
            reg.session,
            actor=reg.user(actor),
            address=address,
            start=since,
            end=until,
            now=reg.now(),
            config=reg.config,
        )
    for row in rows:
        record = {
            "address": row.address,
            "ports": list(row.ports),
            "from": _iso(row.valid_from),
            "until": _iso(row.until),
            "stopped": row.stopped,
            "isp": row.isp,
            "subscriber_id": row.subscriber_id,
            "session_id": row.session_id,
            "registration": row.tracking_number,
        }
        if as_json:
            typer.echo(json.dumps(record, sort_keys=True))
        else:
            lo, hi = row.ports
            typer.echo(
                f"{record['from']} .. {record['until']}  {row.address} ports {lo}-{hi}  "
                f"{row.isp} subscriber {row.subscriber_id}  "
                f"{row.tracking_number or 'no registration'}"
            )
    if not rows and not as_json:
        typer.echo(f"no binding held {address} between {_iso(since)} and {_iso(until)}")


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def maintenance() -> None:
    """Routine upkeep: delete binding history older than the retention setting
    (VPNREG_BINDING_RETENTION_DAYS, default 180), keeping the counts in the audit log."""
    from vpnreg.registry.services.binding_history import purge_bindings

    with open_registry() as reg:
        days = reg.settings.binding_retention_days
        done = purge_bindings(
            reg.session, now=reg.now(), retention_days=days, actor="cli:maintenance"
        )
    per_isp = ", ".join(f"{name}: {count}" for name, count in done.by_isp.items())
    typer.echo(
        f"bindings: deleted {done.deleted} that ended before {_iso(done.cutoff)} "
        f"(kept {days} days){f' ({per_isp})' if per_isp else ''}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(bindings_app, name="bindings")
    app.command("maintenance")(maintenance)
