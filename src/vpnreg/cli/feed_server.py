"""`vpnreg feed publish|snapshot|mode`: the registry's side of the signed allowlist feed."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vpnreg.cli.runtime import EXIT_USAGE, fail

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from vpnreg.core.feed import FeedHistory
    from vpnreg.registry.services import PublishResult
    from vpnreg.settings import Settings

_DURATION = re.compile(r"([1-9]\d{0,6})([smhd])")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
DEFAULT_SNAPSHOT_EXPIRY = "7d"


def parse_duration(text: str) -> dt.timedelta:
    """ "30s", "15m", "12h" or "7d" as a timedelta; anything else is a ValueError."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 12h or 7d")
    return dt.timedelta(**{_UNIT[found.group(2)]: int(found.group(1))})


def feed_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The key VPNREG_FEED_KEY names; created when missing in development mode only."""
    from vpnreg.feedkeys import FeedKeyError, ensure_dev_key, load_private_key

    try:
        if settings.is_production:
            return load_private_key(settings.feed_key)
        return ensure_dev_key(settings.feed_key)
    except FeedKeyError as err:
        fail(str(err))


def _summary(result: PublishResult) -> str:
    if result.previous_serial == 0:
        how = "created"
    elif result.changed:
        how = f"+{result.added} -{result.removed}"
    else:
        how = "unchanged"
    mode = result.mode.to_json()
    overrides = ",".join(f"{p}={m}" for p, m in mode["per_protocol"].items())
    return (
        f"feed: session {result.session_id} serial {result.serial} ({how}), "
        f"{result.entries} entries, set hash {result.set_hash[:16]}, "
        f"mode {mode['default']}{' ' + overrides if overrides else ''}"
    )


def publish(
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            help="Also write the static feed (notification.json, snapshot and delta files) "
            "into this directory, for any web server or CDN to serve.",
        ),
    ] = None,
) -> None:
    """Publish pending changes now (for cron): expiry and activation due by now, then any
    difference between the registered set and the published one, as a new serial."""
    from vpnreg.cli.registry_context import open_registry
    from vpnreg.registry import services
    from vpnreg.registry.services.mode_trials import end_due_trials

    with open_registry() as reg:
        now = reg.now()
        for reverted in end_due_trials(reg.session, now=now, config=reg.config):
            typer.echo(f"trial ended: {_summary(reverted)}")
        result = services.publish(reg.session, now=now, config=reg.config)
        for change in result.time_changes:
            typer.echo(
                f"{change.tracking_number}: {change.from_state} -> {change.to_state}", err=True
            )
        typer.echo(_summary(result))
        if to is not None:
            history = services.current_feed(reg.session)
            if history is None:  # pragma: no cover - publish always stores a feed
                fail("the feed was not published")
            typer.echo(_write_static(to, history, reg.settings, now))


def _write_static(
    directory: Path, history: FeedHistory, settings: Settings, now: dt.datetime
) -> str:
    """Write the static feed of `history` into `directory`; its one-line summary."""
    from vpnreg.registry.feed_static import static_options, write_static_feed

    key = feed_signing_key(settings)
    options = static_options(
        validity_s=settings.feed_validity_s, grace_s=settings.feed_static_grace_s
    )
    try:
        done = write_static_feed(directory, history, key=key, now=now, options=options)
    except OSError as err:
        fail(f"cannot write the static feed in {directory}: {err.strerror or err}")
    note = done.notification
    how = "written" if done.replaced else "unchanged"
    return (
        f"static feed: {directory} serial {note.serial}, {len(note.deltas)} deltas kept, "
        f"{len(done.written)} files written, {len(done.removed)} removed ({how})"
    )


def snapshot(
    out: Annotated[Path, typer.Option("--out", help="Where to write the signed snapshot.")],
    expires: Annotated[
        str, typer.Option("--expires", help="Validity from now: 30s, 15m, 12h, 7d.")
    ] = DEFAULT_SNAPSHOT_EXPIRY,
    compact: Annotated[
        bool,
        typer.Option(
            "--compact",
            help="Write the compact snapshot (ADR 0011: records, not JSON; loads in a fraction "
            "of the time) instead of the JSON document.",
        ),
    ] = False,
) -> None:
    """Publish pending changes, then write the current signed snapshot (for offline gateways:
    `vpnreg feed pull --feed FILE` or a gateway's feed file)."""
    from vpnreg.cli.registry_context import open_registry
    from vpnreg.core.feed.compact import sign_history_compact
    from vpnreg.core.feed.document import expires_after, sign_history_snapshot
    from vpnreg.files import write_atomic
    from vpnreg.registry import services

    try:
        validity = parse_duration(expires)
    except ValueError as err:
        fail(str(err), EXIT_USAGE)
    with open_registry() as reg:
        key = feed_signing_key(reg.settings)
        now = reg.now()
        services.publish(reg.session, now=now, config=reg.config)
        history = services.current_feed(reg.session)
        if history is None:  # pragma: no cover - publish always stores a feed
            fail("the feed was not published")
        snap = history.snapshot()
        until = expires_after(snap.created, now=now, validity=validity)
        sign = sign_history_compact if compact else sign_history_snapshot
        body = sign(snap, expires=until, private_key=key)
    try:
        write_atomic(out, body)
    except OSError as err:
        fail(f"cannot write {out}: {err.strerror}")
    typer.echo(
        f"{'compact ' if compact else ''}snapshot: session {snap.session_id} serial {snap.serial}, "
        f"{len(snap.entries)} entries, "
        f"set hash {snap.set_hash[:16]}, expires {until:%Y-%m-%dT%H:%M:%SZ} -> {out}"
    )


def mode(
    value: Annotated[str, typer.Argument(metavar="{enforce,dry-run}", help="The mode to sign.")],
    actor: Annotated[str, typer.Option("--actor", help="The regulator acting (audited).")],
    protocol: Annotated[
        str | None,
        typer.Option(help="Only this VPN protocol (openvpn, wireguard, ipsec, ...); default all."),
    ] = None,
    reason: Annotated[
        str,
        typer.Option("--reason", help="Why (required; shown on the public mode-changes page)."),
    ] = "",
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="A trial: revert to the mode before at this time (ISO 8601 with offset).",
        ),
    ] = None,
) -> None:
    """Set the signed enforcement mode: the national switch between enforce and dry-run
    (without --protocol every per-protocol override is dropped). Regulators only. Every change
    gives a reason and is announced on the public page /mode-changes; with --until it is a
    trial that the next publish after that time reverts."""
    from vpnreg.cli.records import parse_time
    from vpnreg.cli.registry_context import open_registry
    from vpnreg.core.feed import Mode
    from vpnreg.registry import services

    if value not in {m.value for m in Mode}:
        fail(f"mode must be enforce or dry-run, not {value!r}", EXIT_USAGE)
    if not reason.strip():
        fail(
            "--reason is required: say why the mode changes (it is announced publicly)", EXIT_USAGE
        )
    end = None if until is None else parse_time(until, "--until")
    with open_registry() as reg:
        result = services.set_mode(
            reg.session,
            mode=value,
            protocol=protocol,
            reason=reason,
            until=end,
            actor=reg.user(actor),
            now=reg.now(),
            config=reg.config,
        )
        typer.echo(_summary(result))


def register(feed_app: typer.Typer) -> None:
    feed_app.command("publish")(publish)
    feed_app.command("snapshot")(snapshot)
    feed_app.command("mode")(mode)
