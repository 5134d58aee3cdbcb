"""`vpnreg audit verify | checkpoint | export`: the tamper-evident audit log and its public proof.

`verify` alone checks the stored chain in the database. With `--export`, it is the outside check
anyone can run without the database (ADR 0008): the export's hashes recomputed from its fields,
its links, and its agreement with every signed checkpoint given (files or the registry's
/transparency/checkpoints, every page followed), signed by a key in `--trust`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vpnreg.cli.registry_context import open_registry
from vpnreg.cli.runtime import EXIT_USAGE, fail

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from vpnreg.core.audit_checkpoint import Checkpoint

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)

#: Pages of checkpoints followed from one URL before giving up (a loop guard).
MAX_PAGES = 10_000
#: Seconds to wait for the registry when fetching checkpoints.
FETCH_TIMEOUT_S = 30.0


@audit_app.command("verify")
def audit_verify(
    export: Annotated[
        Path | None,
        typer.Option(help="Check this public export (JSON Lines) instead of the database."),
    ] = None,
    checkpoint: Annotated[
        list[str] | None,
        typer.Option(
            help="Signed checkpoints: a file or the registry's /transparency/checkpoints URL "
            "(repeatable; with --export)."
        ),
    ] = None,
    trust: Annotated[
        list[Path] | None,
        typer.Option(help="Public key that signs checkpoints, feed.pub (repeatable)."),
    ] = None,
) -> None:
    """Check the audit log's hash chain (names the first bad event), or an export from outside."""
    if export is None:
        if checkpoint or trust:
            fail("--checkpoint and --trust go with --export", EXIT_USAGE)
        _verify_database()
        return
    if not checkpoint:
        fail("give at least one --checkpoint (file or URL) with --export", EXIT_USAGE)
    if not trust:
        fail("give the signing key's public half with --trust feed.pub", EXIT_USAGE)
    _verify_export(export, checkpoint, trust)


def _verify_database() -> None:
    from vpnreg.registry import services

    with open_registry() as reg:
        problem = services.verify_audit(reg.session)
        if problem is not None:
            fail(f"audit log broken at event {problem.seq}: {problem.kind}: {problem.message}")
        count = reg.audit_count()
    typer.echo(f"audit log intact: {count} events")


def _trusted(paths: list[Path]) -> dict[str, Ed25519PublicKey]:
    from vpnreg.core.feed import key_id
    from vpnreg.feedkeys import FeedKeyError, load_public_key

    keys = {}
    for path in paths:
        try:
            key = load_public_key(path)
        except FeedKeyError as err:
            fail(str(err), EXIT_USAGE)
        keys[key_id(key)] = key
    return keys


def _checkpoints_in(document: object, origin: str) -> tuple[list[Any], str | None]:
    """The checkpoints a JSON document holds and the next page's link: a page of
    /transparency/checkpoints, one checkpoint (/latest) or a list of them."""
    if isinstance(document, list):
        return document, None
    if isinstance(document, dict) and "checkpoints" in document:
        found = document["checkpoints"]
        following = document.get("next")
        if not isinstance(found, list) or not (following is None or isinstance(following, str)):
            fail(f"{origin}: 'checkpoints' must be a list and 'next' a link or null")
        latest = document.get("latest")
        return ([latest] if isinstance(latest, dict) else []) + found, following
    if isinstance(document, dict):
        return [document], None
    fail(f"{origin}: not a checkpoint, a list of checkpoints or a page of them")


def _fetch(url: str) -> Iterator[tuple[object, str]]:
    import httpx

    seen = 0
    with httpx.Client(timeout=FETCH_TIMEOUT_S, follow_redirects=True) as client:
        next_url: str | None = url
        while next_url is not None and seen < MAX_PAGES:
            try:
                response = client.get(next_url)
            except httpx.HTTPError as err:
                fail(f"{next_url}: cannot fetch checkpoints ({err})")
            if response.status_code != 200:
                fail(f"{next_url}: the registry answered HTTP {response.status_code}")
            try:
                document = response.json()
            except ValueError:
                fail(f"{next_url}: the answer is not JSON")
            yield document, next_url
            _, following = _checkpoints_in(document, next_url)
            next_url = str(response.url.join(following)) if following else None
            seen += 1


def _load_checkpoints(sources: list[str]) -> list[Checkpoint]:
    from vpnreg.core.audit_checkpoint import CheckpointError, parse_checkpoint

    found: list[Checkpoint] = []
    for source in sources:
        if source.startswith(("http://", "https://")):
            documents = list(_fetch(source))
        else:
            try:
                text = Path(source).read_bytes()
            except OSError as err:
                fail(f"{source}: cannot read ({err.strerror})", EXIT_USAGE)
            try:
                documents = [(json.loads(text), source)]
            except ValueError as err:
                fail(f"{source}: not JSON ({err})")
        for document, origin in documents:
            items, _ = _checkpoints_in(document, origin)
            for item in items:
                try:
                    found.append(parse_checkpoint(item))
                except CheckpointError as err:
                    fail(f"{origin}: {err}")
    if not found:
        fail(f"no checkpoint found in {', '.join(sources)}")
    return found


def _export_events(path: Path) -> Iterator[tuple[int, object]]:
    try:
        handle = path.open("rb")
    except OSError as err:
        fail(f"{path}: cannot read ({err.strerror})", EXIT_USAGE)
    with handle:
        for number, line in enumerate(handle, start=1):
            try:
                yield number, json.loads(line)
            except ValueError:
                fail(f"{path}: line {number} is not JSON")


def _verify_export(export: Path, sources: list[str], trust: list[Path]) -> None:
    from vpnreg.core.audit_export import check_against_checkpoints

    trusted = _trusted(trust)
    if not export.is_file():
        fail(f"{export}: no such file", EXIT_USAGE)
    checkpoints = _load_checkpoints(sources)
    try:
        outcome = check_against_checkpoints(_export_events(export), checkpoints, trusted)
    except ValueError as err:
        fail(f"{export}: {err}")
    summary, last = outcome.export, outcome.checkpoints[-1]
    typer.echo(
        f"export consistent: {summary.events} events ({summary.withheld} before transparency), "
        f"{len(outcome.checkpoints)} signed checkpoint(s), the latest {last.number} at event "
        f"{last.count} ({last.time.isoformat()})"
    )


@audit_app.command("checkpoint")
def audit_checkpoint(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the signed checkpoint as JSON (to keep a copy).")
    ] = False,
) -> None:
    """Sign a checkpoint of the audit chain now (count, head hash, time) with the feed key."""
    from vpnreg.feedkeys import FeedKeyError, server_signing_key
    from vpnreg.registry.services import transparency

    with open_registry() as reg:
        try:
            key = server_signing_key(reg.settings.feed_key, production=reg.settings.is_production)
        except FeedKeyError as err:
            fail(str(err))
        made = transparency.make_checkpoint(reg.session, now=reg.now(), private_key=key)
    if as_json:
        typer.echo(json.dumps(made.to_json(), sort_keys=True))
        return
    typer.echo(
        f"checkpoint {made.number}: {made.count} events, head {made.head}, "
        f"{made.time.isoformat()}, key {made.key_id}"
    )


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Option(help="Where to write the export (JSON Lines).")],
) -> None:
    """Write the public part of the audit log, one event a line (no personal data in clear)."""
    from vpnreg.files import write_atomic
    from vpnreg.registry.services import transparency

    if not out.parent.is_dir():
        fail(f"{out.parent}: no such directory", EXIT_USAGE)
    lines = 0

    def counted() -> Iterator[bytes]:
        nonlocal lines
        for line in transparency.export_lines(reg.session):
            lines += 1
            yield line

    with open_registry() as reg:
        try:
            write_atomic(out, counted())
        except (TypeError, ValueError) as err:
            fail(f"cannot export the audit log: {err} (run `vpnreg audit verify`)")
        except OSError as err:
            fail(f"{out}: cannot write ({err.strerror})")
    typer.echo(f"wrote {lines} events to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
