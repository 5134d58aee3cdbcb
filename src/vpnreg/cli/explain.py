"""`vpnreg explain`: why an address or prefix was blocked, from the gateways' reports."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Annotated

import typer

from vpnreg.cli.records import parse_time
from vpnreg.cli.workflow import Actor

if TYPE_CHECKING:
    from vpnreg.registry.services.explain import Explanation


def explain(
    target: Annotated[str, typer.Argument(help="An IPv4/IPv6 address or prefix (up to /16, /40).")],
    actor: Actor,
    at: Annotated[
        str | None,
        typer.Option("--at", help="At this time (ISO 8601 with offset); default now."),
    ] = None,
    hours: Annotated[
        int, typer.Option("--hours", help="Whole hours of reports up to --at's hour (max 336).")
    ] = 24,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Which verdicts TARGET got from which gateway, under which feed serial, rule and
    registration (from the gateways' hourly reports), and the registry's own answer at --at.

    Regulators, auditors and admins; every explanation is recorded in the audit log."""
    when = None if at is None else parse_time(at, "--at")
    from vpnreg.cli.registry_context import open_registry
    from vpnreg.registry.services.explain import explain as run

    with open_registry() as reg:
        now = reg.now()
        result = run(
            reg.session,
            actor=reg.user(actor),
            target=target,
            at=when or now,
            hours=hours,
            now=now,
            config=reg.config,
        )
    if as_json:
        typer.echo(json.dumps(_as_json(result), sort_keys=True))
        return
    typer.echo(result.registry_answer)
    for h in result.holders:
        standing = "registered" if h.registered_at_time else "not registered"
        typer.echo(f"  {h.tracking_number} ({h.state}) holds {h.space} by {h.via}: {standing}")
    if not result.rows:
        typer.echo(result.empty_note or "")
        return
    for r in result.rows:
        whose = r.tracking_number or r.prefix or (r.registration_id or "-")
        serial = "no feed" if r.feed_serial is None else f"serial {r.feed_serial}"
        typer.echo(
            f"{_iso(r.hour)}  {r.gateway_id}  {r.protocol} {r.verdict} x{r.flows}  {whose}  "
            f"rule {r.rule or 'none'} ({r.rule_basis})  {r.mode}  {serial}: {r.serial_note}"
        )


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_json(result: Explanation) -> dict[str, object]:
    return {
        "target": result.target,
        "at": _iso(result.at),
        "since": _iso(result.since),
        "registry_answer": result.registry_answer,
        "holders": [
            {
                "registration_id": h.registration_id,
                "tracking_number": h.tracking_number,
                "state": h.state,
                "registered_at_time": h.registered_at_time,
                "valid_until": None if h.valid_until is None else h.valid_until.isoformat(),
                "space": h.space,
                "via": h.via,
            }
            for h in result.holders
        ],
        "rows": [
            {
                "hour": _iso(r.hour),
                "gateway_id": r.gateway_id,
                "protocol": r.protocol,
                "verdict": r.verdict,
                "flows": r.flows,
                "registration_id": r.registration_id,
                "tracking_number": r.tracking_number,
                "prefix": r.prefix,
                "rule": r.rule,
                "rule_basis": r.rule_basis,
                "mode": r.mode,
                "feed_serial": r.feed_serial,
                "set_hash": r.set_hash,
                "serial_status": r.serial_status,
                "serial_note": r.serial_note,
            }
            for r in result.rows
        ],
        "note": result.empty_note,
    }


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
