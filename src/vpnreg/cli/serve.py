"""`vpnreg serve`: the portal, the JSON API and the feed, from one process.

The limits on clients (header and body deadlines, keep-alive, open connections) come from the
settings (VPNREG_HTTP_*) and can be overridden per start with the options below; they are
enforced by vpnreg.web.http_server.
"""

from __future__ import annotations

from typing import Annotated

import typer

from vpnreg.cli.runtime import fail, load_settings


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    header_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Seconds a client has to send a request's line and headers, then 408 and "
            "close (default: VPNREG_HTTP_HEADER_TIMEOUT_S, else 10).",
        ),
    ] = None,
    body_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Seconds a client has to send a request's body once the headers are in "
            "(default: VPNREG_HTTP_BODY_TIMEOUT_S, else 60).",
        ),
    ] = None,
    keep_alive: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Seconds an idle kept-alive connection stays open "
            "(default: VPNREG_HTTP_KEEP_ALIVE_S, else 5).",
        ),
    ] = None,
    max_connections: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Open connections beyond which requests get 503 with Retry-After "
            "(default: VPNREG_HTTP_MAX_CONNECTIONS, else 1000).",
        ),
    ] = None,
) -> None:
    """Serve the portal and the API."""
    import uvicorn

    from vpnreg.web.app import create_app
    from vpnreg.web.http_server import ServerLimits, guarded_protocol
    from vpnreg.web.security import InsecureSettings

    settings = load_settings()
    limits = ServerLimits(
        header_timeout_s=header_timeout or settings.http_header_timeout_s,
        body_timeout_s=body_timeout or settings.http_body_timeout_s,
        keep_alive_s=keep_alive or settings.http_keep_alive_s,
        max_connections=max_connections or settings.http_max_connections,
    )
    try:
        app = create_app(settings)
    except InsecureSettings as err:
        fail(str(err))
    typer.echo(f"vpnreg: serving on http://{host}:{port}", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        http=guarded_protocol(limits),
        timeout_keep_alive=limits.keep_alive_s,
        # Queued, not yet accepted connections: room for a burst as large as the limit.
        backlog=max(2048, limits.max_connections),
    )


def register(app: typer.Typer) -> None:
    app.command()(serve)
