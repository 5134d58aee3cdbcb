"""The `vpnreg classify` command: one line per flow of each capture, VPN or not and why."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vpnreg.agent.pcapfile import CaptureError, check_capture
from vpnreg.cli.runtime import say_error
from vpnreg.core.classify import FlowContext, classify

#: Table format: (heading, jsonl key) in order; every jsonl object has these keys and more.
TABLE_COLUMNS = (
    ("src", "src_ip"),
    ("sport", "src_port"),
    ("dst", "dst_ip"),
    ("dport", "dst_port"),
    ("proto", "ip_protocol"),
    ("application", "application"),
    ("vpn", "vpn"),
    ("vpn_protocol", "vpn_protocol"),
    ("pkts", "packets_to_verdict"),
    ("basis", "basis"),
)


class OutputFormat(StrEnum):
    TABLE = "table"
    JSONL = "jsonl"


def verdict_rows(path: Path, *, label: str) -> Iterator[dict[str, Any]]:
    """Classify every flow of one capture (already checked), in hand-over order."""
    # NFStream loads only when flows are read, so the rest of the CLI starts fast.
    from vpnreg.agent.flows import iter_flows

    context = FlowContext()
    for record in iter_flows(path):
        flow = record.features
        verdict = classify(flow, context)
        context.observe(flow, verdict)
        yield {
            "file": label,
            "src_ip": flow.src_ip,
            "src_port": flow.src_port,
            "dst_ip": flow.dst_ip,
            "dst_port": flow.dst_port,
            "ip_protocol": flow.protocol,
            "application": flow.application_name,
            "category": flow.category_name,
            "confidence": flow.confidence,
            "vpn": verdict.vpn,
            "vpn_protocol": verdict.vpn_protocol.value,
            "basis": verdict.basis,
            "classification_rule": verdict.rule,
            "handover": record.handover.value,
            "packets_to_verdict": record.packets_to_verdict,
            "ms_to_verdict": record.ms_to_verdict,
        }


def classify_command(
    pcaps: Annotated[
        list[Path],
        # readable=False: click would refuse the whole command for one unreadable file (exit
        # 2); check_capture reports it in one line and the other files are still classified.
        typer.Argument(metavar="PCAP...", help="pcap or pcapng files to classify", readable=False),
    ],
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="table or jsonl (one object per flow)")
    ] = OutputFormat.TABLE,
) -> None:
    """Classify the flows of capture files as VPN or not (one line per flow)."""
    failed = False
    console = Console(width=None if sys.stdout.isatty() else 200)
    for path in pcaps:
        try:
            check_capture(path)
        except CaptureError as exc:
            say_error(f"{exc.path}: {exc.message}")
            failed = True
            continue
        rows = verdict_rows(path, label=str(path))
        if output_format is OutputFormat.JSONL:
            for row in rows:
                sys.stdout.write(json.dumps(row, sort_keys=False) + "\n")
            sys.stdout.flush()
        else:
            table = Table(title=str(path), title_justify="left")
            for heading, _key in TABLE_COLUMNS:
                table.add_column(heading, overflow="fold", no_wrap=heading != "basis")
            for row in rows:
                style = "bold" if row["vpn"] else None
                table.add_row(*(str(row[key]) for _h, key in TABLE_COLUMNS), style=style)
            console.print(table)
    if failed:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add the `classify` command to the root app."""
    app.command("classify")(classify_command)
