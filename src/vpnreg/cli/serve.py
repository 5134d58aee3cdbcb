"""`vpnreg serve`: the portal, the JSON API and the feed, from one process."""

from __future__ import annotations

from typing import Annotated

import typer

from vpnreg.cli.runtime import fail, load_settings


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Serve the portal and the API."""
    import uvicorn

    from vpnreg.web.app import create_app
    from vpnreg.web.security import InsecureSettings

    try:
        app = create_app(load_settings())
    except InsecureSettings as err:
        fail(str(err))
    typer.echo(f"vpnreg: serving on http://{host}:{port}", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info")


def register(app: typer.Typer) -> None:
    app.command()(serve)
