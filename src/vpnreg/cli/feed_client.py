"""`vpnreg feed keygen` and `vpnreg feed pull`: a signing key pair, and one verified feed fetch."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from vpnreg.cli.runtime import clock, fail, say_error


def keygen(
    directory: Annotated[
        Path, typer.Option("--dir", help="Directory for feed.key (0600) and feed.pub.")
    ],
) -> None:
    """Generate a feed signing key pair and print its key id."""
    from vpnreg.feedkeys import FeedKeyError, generate_keypair

    try:
        key = generate_keypair(directory)
    except FeedKeyError as err:
        fail(str(err))
    typer.echo(key)


def pull(
    feed: Annotated[
        str,
        typer.Option(
            "--feed",
            help="Feed base URL (https://.../feed/v1), a static feed's notification.json URL "
            "or directory, or a snapshot file.",
        ),
    ],
    trust: Annotated[
        list[Path],
        typer.Option("--trust", help="Trusted public key file (feed.pub); repeatable."),
    ],
    state_dir: Annotated[
        Path,
        typer.Option("--state-dir", help="Where the last good copy is kept (created if missing)."),
    ] = Path("./var/feed-client"),
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="VPNREG_FEED_TOKEN", help="Gateway bearer token."),
    ] = None,
    max_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-bytes",
            min=1,
            help="Refuse a feed document or response larger than this (default 512 MiB).",
        ),
    ] = None,
) -> None:
    """Fetch the allowlist feed once, verify it fully and keep it if it is newer."""
    from vpnreg.agent.feedclient import (
        DEFAULT_MAX_BYTES,
        FeedClient,
        PollStatus,
        load_public_keys,
    )
    from vpnreg.feedkeys import FeedKeyError

    try:
        trusted = load_public_keys(trust)
    except FeedKeyError as err:
        fail(str(err))
    if not trusted:
        fail("give at least one --trust public key")
    # The refusal is reported once, by fail(); the client's own log line would repeat it.
    quiet = logging.getLogger("vpnreg.cli.feed_client.pull")
    quiet.propagate = False
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
    with FeedClient(
        source=feed,
        trusted=trusted,
        state_dir=state_dir,
        clock=clock(),
        token=token,
        logger=quiet,
        max_bytes=max_bytes if max_bytes is not None else DEFAULT_MAX_BYTES,
    ) as client:
        result = client.poll()
    if result.status in (PollStatus.REFUSED, PollStatus.UNREACHABLE):
        error = result.error or str(result.status)
        fail(f"{error}; {result.notice}" if result.notice else error)
    if result.notice:
        say_error(result.notice)
    state = result.state
    if state is None:
        fail("the feed gave no state")
    # a v1 copy (ADR 0006: read for one release) is named, so operators see it pass
    version = " of version 1 (read for one release)" if state.version == 1 else ""
    typer.echo(
        f"feed: session {state.session_id} serial {state.serial}, {len(state.entries)} entries"
        f"{version}, set hash {state.set_hash} ({result.status})"
    )


def register(feed_app: typer.Typer) -> None:
    """Add `keygen` and `pull` to the `feed` sub-app."""
    feed_app.command("keygen")(keygen)
    feed_app.command("pull")(pull)
