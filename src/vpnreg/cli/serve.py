"""`vpnreg serve`: the portal, the JSON API and the feed, from one process or, with
`--workers N`, from N worker processes forked by it (vpnreg.web.workers, ADR 0016).

The limits on clients (header and body deadlines, keep-alive, open connections) come from the
settings (VPNREG_HTTP_*) and can be overridden per start with the options below; they are
enforced by vpnreg.web.http_server, in each worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from vpnreg.cli.runtime import fail, load_settings
from vpnreg.settings import Settings

if TYPE_CHECKING:
    from vpnreg.web.http_server import ServerLimits


#: sys.setswitchinterval of the server processes (Python's default is 0.005).
SWITCH_INTERVAL_S = 0.001


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
    access_log: Annotated[
        bool | None,
        typer.Option(
            "--access-log/--no-access-log",
            help="A line per request on standard error (default: VPNREG_HTTP_ACCESS_LOG, else on).",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes, forked by this one, serving the same port; one of them "
            "publishes the feed at a time. A worker that dies is started again; stopping "
            "this process stops them all.",
        ),
    ] = 1,
) -> None:
    """Serve the portal and the API."""
    import sys

    # The event loop hands the GIL to a worker thread (a publish, an index build, a sync route)
    # at every socket call, and then waited up to the default 5 ms for it back: a thousand long
    # polls answered during a publish queued behind those slices (ADR 0018). The forked workers
    # inherit it.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
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
    if access_log is not None:
        settings = settings.model_copy(update={"http_access_log": access_log})
    if workers > 1:
        _serve_workers(settings, limits, host=host, port=port, workers=workers)
        return
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
        access_log=settings.http_access_log,
        http=guarded_protocol(limits),
        timeout_keep_alive=limits.keep_alive_s,
        backlog=_backlog(limits),
    )


def _backlog(limits: ServerLimits) -> int:
    # Queued, not yet accepted connections: room for a burst as large as the limit.
    return max(2048, limits.max_connections)


def _serve_workers(
    settings: Settings, limits: ServerLimits, *, host: str, port: int, workers: int
) -> None:
    """Check the settings and make what every worker must share, bind the port, then fork the
    workers and supervise them (vpnreg.web.workers)."""
    import logging
    import secrets
    import socket

    import uvicorn

    from vpnreg.feedkeys import FeedKeyError, server_signing_key
    from vpnreg.web.app import create_app
    from vpnreg.web.http_server import guarded_protocol
    from vpnreg.web.security import InsecureSettings, signing_key
    from vpnreg.web.workers import bind_socket, run_workers

    try:
        signing_key(settings)
        # In development a missing feed key is generated: once, here, not by every worker.
        server_signing_key(settings.feed_key, production=settings.is_production)
    except (InsecureSettings, FeedKeyError) as err:
        # refused before any worker starts, not by each of them once a second
        fail(str(err))
    if settings.secret_key is None:
        # Development makes a random secret key per start; the workers must share one, or a
        # session cookie one of them set would be refused by the others.
        settings = settings.model_copy(update={"secret_key": secrets.token_urlsafe(32)})
    try:
        sock = bind_socket(host, port, _backlog(limits))
    except OSError as err:
        fail(f"cannot listen on {host}:{port}: {err.strerror or err}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")

    def serve_one(listening: socket.socket) -> None:
        app = create_app(settings)
        config = uvicorn.Config(
            app,
            log_level="info",
            access_log=settings.http_access_log,
            http=guarded_protocol(limits),
            timeout_keep_alive=limits.keep_alive_s,
            backlog=_backlog(limits),
        )
        uvicorn.Server(config).run(sockets=[listening])

    typer.echo(f"vpnreg: serving on http://{host}:{port} with {workers} workers", err=True)
    run_workers(workers, sock, serve_one)


def register(app: typer.Typer) -> None:
    app.command()(serve)
