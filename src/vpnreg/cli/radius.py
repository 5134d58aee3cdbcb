"""`vpnreg radius --listen HOST:PORT`: the RADIUS accounting server (docs/radius.md).

Runs until SIGTERM or SIGINT, then stores what it has queued, logs its counters and exits 0.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from vpnreg.cli.runtime import EXIT_USAGE, clock, fail, load_settings

#: The UDP receive buffer asked for (net.core.rmem_max may grant less).
RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024


def parse_listen(value: str) -> tuple[str, int]:
    """HOST:PORT, with an IPv6 host in brackets ([::]:1813); the port may be 0 (any free)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        fail(f"--listen {value!r}: expected HOST:PORT, e.g. 0.0.0.0:1813 or [::]:1813", EXIT_USAGE)
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        fail(f"--listen {value!r}: {host!r} is not an IP address", EXIT_USAGE)
    return host, int(port)


def radius(
    listen: Annotated[
        str, typer.Option(metavar="HOST:PORT", help="Address and UDP port to listen on.")
    ] = "127.0.0.1:1813",
    dictionary: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="FILE",
            help="An extra RADIUS dictionary (FreeRADIUS format) for vendor attributes "
            "(repeatable).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    stats_interval: Annotated[
        float, typer.Option(min=1.0, metavar="S", help="Seconds between two logs of the counters.")
    ] = 60.0,
) -> None:
    """Receive RADIUS accounting (RFC 2866) from the ISPs' clients and store their bindings."""
    from sqlalchemy.exc import DBAPIError

    from vpnreg.radius.server import AccountingServer, load_dictionary
    from vpnreg.registry.errors import RegistryError
    from vpnreg.registry.services.config import ServiceConfig
    from vpnreg.registry.services.unit_of_work import Database

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="vpnreg radius: %(levelname)s: %(message)s"
    )
    host, port = parse_listen(listen)
    try:
        attributes = load_dictionary([str(p) for p in dictionary or []])
    except (OSError, ValueError) as err:
        fail(f"cannot read the RADIUS dictionary: {err}")
    settings = load_settings()
    database = Database(settings.database_url)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    # A burst (a BNG restarting sends a Start per subscriber) must wait in the kernel, not be
    # lost: the default buffer holds a few hundred requests. The kernel caps this at rmem_max.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
    try:
        try:
            sock.bind((host, port))
        except OSError as err:
            fail(f"cannot listen on {listen}: {err.strerror or err}")
        server = AccountingServer(
            sock=sock,
            database=database,
            config=ServiceConfig.from_settings(settings),
            clock=clock(),
            dictionary=attributes,
            stats_interval=stats_interval,
        )
        try:
            clients = server.load_clients()
        except (DBAPIError, RegistryError) as err:
            fail(f"cannot read the RADIUS clients: {' '.join(str(err).split())[:300]}")
        for client in clients.values():
            for name in (client.subscriber_attribute, client.ports_attribute):
                if name is not None and name not in attributes.attributes:
                    logging.getLogger("vpnreg.radius").warning(
                        "client %s (ISP %s) names attribute %s, which the dictionary lacks",
                        client.address,
                        client.isp_name,
                        name,
                    )
        stop = threading.Event()

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
        logging.getLogger("vpnreg.radius").info(
            "listening on %s:%d (UDP), %d client(s)", shown, bound_port, len(clients)
        )
        server.serve(stop)
    finally:
        sock.close()
        database.dispose()


def register(app: typer.Typer) -> None:
    app.command()(radius)
