"""Application commands: apply, review, appeal, withdraw, renew, amend.

Each runs as `--actor USER`, whose role the service checks and the audit log records;
`--expect-version N` refuses the action when the application has moved on since version N.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from vpnreg.cli.registry_context import Registry, open_registry
from vpnreg.cli.runtime import EXIT_USAGE, fail
from vpnreg.registry import services
from vpnreg.registry.models import Application

Actor = Annotated[str, typer.Option("--actor", help="Username acting (its role is checked).")]
ExpectVersion = Annotated[
    int | None,
    typer.Option("--expect-version", help="Refuse if the application is no longer this version."),
]
AppRef = Annotated[str, typer.Argument(help="Application id or tracking number.")]

review_app = typer.Typer(help="Decisions of the ISP, the sector body and the regulator.")
appeal_app = typer.Typer(help="Appeals against a rejection.")


def _report(app: Application, what: str) -> None:
    typer.echo(
        f"{app.tracking_number} {what}: state {app.state}, version {app.version}"
        + (f", valid until {app.valid_until}" if app.valid_until else "")
    )


def _load_application_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        fail(f"{path}: cannot read ({err.strerror})", EXIT_USAGE)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        fail(f"{path}: not valid YAML ({' '.join(str(err).split())})")
    if not isinstance(data, dict):
        fail(f"{path}: expected a mapping with organisation, isp and prefixes")
    for key in ("organisation", "isp", "prefixes"):
        if key not in data:
            fail(f"{path}: missing {key!r}")
    if not isinstance(data["prefixes"], list):
        fail(f"{path}: 'prefixes' must be a list")
    return data


def _prefix_requests(path: Path, items: list[Any]) -> list[tuple[str, list[str]]]:
    requests: list[tuple[str, list[str]]] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            requests.append((item, []))
        elif isinstance(item, dict) and isinstance(item.get("prefix"), str):
            peers = item.get("peers") or []
            if not isinstance(peers, list) or not all(isinstance(p, str) for p in peers):
                fail(f"{path}: prefixes[{i}].peers must be a list of prefixes")
            requests.append((item["prefix"], list(peers)))
        else:
            fail(f"{path}: prefixes[{i}] must be a prefix or a mapping with 'prefix'")
    return requests


def apply(
    file: Annotated[Path, typer.Argument(help="Application in YAML (see docs/cli.md).")],
    actor: Actor,
    draft: Annotated[bool, typer.Option(help="Keep it as a draft instead of submitting.")] = False,
) -> None:
    """Create an application from a YAML file and submit it."""
    data = _load_application_file(file)
    requests = _prefix_requests(file, data["prefixes"])
    with open_registry() as reg:
        user = reg.user(actor)
        from vpnreg.registry.models import ISP, Organisation

        app = services.create_application(
            reg.session,
            organisation_id=reg.id_by_name(Organisation, str(data["organisation"])),
            isp_id=reg.id_by_name(ISP, str(data["isp"])),
            prefixes=requests,
            actor=user,
            now=reg.now(),
            config=reg.config,
        )
        if not draft and data.get("submit", True):
            app = services.submit(
                reg.session,
                application_id=app.id,
                actor=user,
                now=reg.now(),
                config=reg.config,
                expected_version=app.version,
            )
        _report(app, "created")


def _act(reg: Registry, ref: str, verb: str, **kwargs: Any) -> Application:
    app = reg.application(ref)
    service = getattr(services, verb)
    result: Application = service(
        reg.session, application_id=app.id, now=reg.now(), config=reg.config, **kwargs
    )
    return result


def _reason_required(reason: str | None, verb: str) -> str:
    if not reason or not reason.strip():
        fail(f"{verb} needs --reason", EXIT_USAGE)
    return reason


def _plain_step(verb: str, done: str, summary: str) -> Callable[..., None]:
    """A command that takes one step the service needs nothing more for than who acts."""

    def command(ref: AppRef, actor: Actor, expect_version: ExpectVersion = None) -> None:
        with open_registry() as reg:
            app = _act(reg, ref, verb, actor=reg.user(actor), expected_version=expect_version)
            _report(app, done)

    command.__doc__ = summary
    command.__name__ = command.__qualname__ = verb
    return command


for _verb, _done, _summary in (
    ("verify", "verified", "The ISP attests that the subscriber holds the addresses."),
    ("endorse", "endorsed", "The sector body endorses (for the categories that need it)."),
    (
        "approve",
        "approved",
        "The regulator approves; the registration starts when its validity begins.",
    ),
):
    review_app.command(_verb)(_plain_step(_verb, _done, _summary))

withdraw = _plain_step(
    "withdraw", "withdrawn", "The applicant withdraws an application before a decision."
)
renew = _plain_step(
    "renew",
    "renewal created",
    "Ask for another year: a new application linked to this one, valid from its end.",
)


@review_app.command("reject")
def review_reject(
    ref: AppRef,
    actor: Actor,
    reason: Annotated[str | None, typer.Option(help="Why, in words (required).")] = None,
    reason_code: Annotated[str, typer.Option(help="Machine-readable reason.")] = "rejected",
    expect_version: ExpectVersion = None,
) -> None:
    """Reject, with a reason (the applicant may appeal)."""
    text = _reason_required(reason, "reject")
    with open_registry() as reg:
        app = _act(
            reg,
            ref,
            "reject",
            actor=reg.user(actor),
            reason_code=reason_code,
            reason=text,
            expected_version=expect_version,
        )
        _report(app, "rejected")


@review_app.command("revoke")
def review_revoke(
    ref: AppRef,
    actor: Actor,
    reason: Annotated[str | None, typer.Option(help="Why, in words (required).")] = None,
    reason_code: Annotated[str, typer.Option(help="Machine-readable reason.")] = "revoked",
    expect_version: ExpectVersion = None,
) -> None:
    """Revoke a registration, with a reason."""
    text = _reason_required(reason, "revoke")
    with open_registry() as reg:
        app = _act(
            reg,
            ref,
            "revoke",
            actor=reg.user(actor),
            reason_code=reason_code,
            reason=text,
            expected_version=expect_version,
        )
        _report(app, "revoked")


@appeal_app.command("file")
def appeal_file(
    ref: AppRef,
    actor: Actor,
    text: Annotated[str | None, typer.Option("--reason", help="Grounds of the appeal.")] = None,
    expect_version: ExpectVersion = None,
) -> None:
    """The applicant appeals a rejection."""
    grounds = _reason_required(text, "appeal")
    with open_registry() as reg:
        app = _act(
            reg, ref, "appeal", actor=reg.user(actor), text=grounds, expected_version=expect_version
        )
        _report(app, "appealed")


@appeal_app.command("uphold")
def appeal_uphold(
    ref: AppRef,
    actor: Actor,
    reason: Annotated[str | None, typer.Option(help="Why the rejection stands.")] = None,
    expect_version: ExpectVersion = None,
) -> None:
    """A regulator upholds the rejection (final)."""
    text = _reason_required(reason, "uphold")
    with open_registry() as reg:
        app = _act(
            reg, ref, "uphold", actor=reg.user(actor), reason=text, expected_version=expect_version
        )
        _report(app, "upheld")


@appeal_app.command("overturn")
def appeal_overturn(
    ref: AppRef,
    actor: Actor,
    reason: Annotated[str | None, typer.Option(help="Why the rejection falls.")] = None,
    expect_version: ExpectVersion = None,
) -> None:
    """A different regulator overturns; the application resumes after the rejecting step."""
    text = _reason_required(reason, "overturn")
    with open_registry() as reg:
        app = _act(
            reg,
            ref,
            "overturn",
            actor=reg.user(actor),
            reason=text,
            expected_version=expect_version,
        )
        _report(app, "overturned")


def amend(
    ref: AppRef,
    actor: Actor,
    prefix: Annotated[str, typer.Option(help="The registered prefix whose peers change.")],
    peers: Annotated[
        str, typer.Option(help="Comma-separated peer prefixes; empty for any peer.")
    ] = "",
    expect_version: ExpectVersion = None,
) -> None:
    """Ask for new peer restrictions; the old ones stay in force until the regulator approves."""
    peer_list = [p.strip() for p in peers.split(",") if p.strip()]
    with open_registry() as reg:
        app = reg.application(ref)
        amendment = services.amend_peers(
            reg.session,
            application_id=app.id,
            prefix=prefix,
            peers=peer_list,
            actor=reg.user(actor),
            now=reg.now(),
            config=reg.config,
            expected_version=expect_version,
        )
        typer.echo(
            f"{app.tracking_number}: peer amendment {amendment.id} for {prefix} awaits the "
            f"regulator ({len(peer_list)} peer prefixes)"
        )


def register(app: typer.Typer) -> None:
    app.command()(apply)
    app.add_typer(review_app, name="review")
    app.add_typer(appeal_app, name="appeal")
    app.command()(withdraw)
    app.command()(renew)
    app.command()(amend)
