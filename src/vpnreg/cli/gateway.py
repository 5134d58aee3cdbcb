"""The `vpnreg gateway` command: the enforcement agent on a capture file or a live interface."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from vpnreg.cli.runtime import EXIT_USAGE, clock, fail


def gateway_command(
    pcap: Annotated[
        Path | None,
        # readable=False: check_capture reports an unreadable capture like any other bad one
        # (exit 1, the file named), where click would call it a usage error.
        typer.Option(
            "--pcap", metavar="FILE", help="read flows from a capture file", readable=False
        ),
    ] = None,
    interface: Annotated[
        str | None, typer.Option("--interface", metavar="IF", help="capture live on an interface")
    ] = None,
    feed: Annotated[
        str | None,
        typer.Option(
            "--feed",
            metavar="URL|FILE|DIR",
            help="feed base URL, a static feed's notification.json URL or directory, "
            "or a signed snapshot file",
        ),
    ] = None,
    trust: Annotated[
        list[Path] | None,
        typer.Option("--trust", metavar="PUBKEY_FILE", help="trusted feed key (repeatable)"),
    ] = None,
    token: Annotated[str | None, typer.Option("--token", help="bearer token for the feed")] = None,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", metavar="DIR", help="where the feed is kept")
    ] = None,
    home: Annotated[
        list[str] | None,
        typer.Option("--home", metavar="PREFIX", help="home (domestic) prefix (repeatable)"),
    ] = None,
    enforce: Annotated[
        str | None, typer.Option("--enforce", metavar="dry-run|nftables", help="back end")
    ] = None,
    verdicts: Annotated[
        Path | None, typer.Option("--verdicts", metavar="FILE.jsonl", help="verdict log")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", metavar="N", help="serve Prometheus metrics")
    ] = None,
    report_url: Annotated[
        str | None,
        typer.Option("--report-url", metavar="URL", help="registry base URL for gateway reports"),
    ] = None,
    gateway_id: Annotated[
        str | None, typer.Option("--gateway-id", metavar="ID", help="this gateway's name")
    ] = None,
    capture: Annotated[
        str | None,
        typer.Option(
            "--capture",
            metavar="interface|conntrack",
            help="capture every packet of --interface, or only each connection's first packets",
        ),
    ] = None,
    capture_packets: Annotated[
        int | None,
        typer.Option("--capture-packets", metavar="N", help="conntrack: packets per direction"),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option("--shards", metavar="K", help="conntrack: agent processes on the interface"),
    ] = None,
    shard: Annotated[
        int | None,
        typer.Option("--shard", metavar="S", help="conntrack: this process's shard (0..K-1)"),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", metavar="FILE.toml", help="configuration file")
    ] = None,
) -> None:
    """Classify flows, decide against the signed allowlist, and block or report."""
    from vpnreg.agent.config import ConfigError
    from vpnreg.agent.ctcapture import CaptureSetupError
    from vpnreg.agent.daemon import GatewayDaemon, GatewayError, run
    from vpnreg.agent.nft import NftError
    from vpnreg.agent.pcapfile import CaptureError, check_capture

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="vpnreg gateway: %(levelname)s: %(message)s"
    )
    overrides = {
        "pcap": pcap,
        "interface": interface,
        "feed": feed,
        "trust": tuple(trust or ()),
        "token": token,
        "state_dir": state_dir,
        "home": tuple(home or ()),
        "enforce": enforce,
        "verdicts": verdicts,
        "metrics_port": metrics_port,
        "report_url": report_url,
        "gateway_id": gateway_id,
        "capture": capture,
        "capture_packets": capture_packets,
        "shards": shards,
        "shard": shard,
    }
    try:
        daemon = GatewayDaemon(config_path=config, overrides=overrides, clock=clock())
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except (GatewayError, OSError, ValueError) as exc:
        fail(str(exc))
    if daemon.config.pcap is not None:
        try:
            check_capture(daemon.config.pcap)
        except CaptureError as exc:
            fail(f"{exc.path}: {exc.message}")
    try:
        code = run(daemon)
    except NftError as exc:
        fail(f"nftables: {exc}")
    except CaptureSetupError as exc:
        fail(f"conntrack capture: {exc}")
    except ValueError as exc:  # NFStream: bad interface or capture
        fail(str(exc))
    raise typer.Exit(code=code)


def register(app: typer.Typer) -> None:
    """Add the `gateway` command to the root app."""
    app.command("gateway")(gateway_command)
