"""Application commands: apply, review, appeal, withdraw, renew, amend, amend-protocols.

Each runs as `--actor USER`, whose role the service checks and the audit log records;
`--expect-version N` refuses the action when the application has moved on since version N.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from vpnreg.cli.application_file import load_application_file
from vpnreg.cli.registry_context import open_registry
from vpnreg.cli.runtime import EXIT_USAGE, fail
from vpnreg.core.review import PROVISIONAL_DAYS, RENEWAL_DAYS, action_named, argument_problems
from vpnreg.registry import services
from vpnreg.registry.views import ApplicationView

Actor = Annotated[str, typer.Option("--actor", help="Username acting (its role is checked).")]
ExpectVersion = Annotated[
    int | None,
    typer.Option("--expect-version", help="Refuse if the application is no longer this version."),
]
AppRef = Annotated[str, typer.Argument(help="Application id or tracking number.")]

review_app = typer.Typer(help="Decisions of the ISP, the sector body and the regulator.")
appeal_app = typer.Typer(help="Appeals against a rejection.")


def _report(app: ApplicationView, what: str) -> None:
    typer.echo(
        f"{app.tracking_number} {what}: state {app.state}, version {app.version}"
        + (f", valid until {app.valid_until}" if app.valid_until else "")
    )


def apply(
    file: Annotated[Path, typer.Argument(help="Application in YAML (see docs/cli.md).")],
    actor: Actor,
    draft: Annotated[bool, typer.Option(help="Keep it as a draft instead of submitting.")] = False,
) -> None:
    """Create an application from a YAML file and submit it."""
    data = load_application_file(file)
    with open_registry() as reg:
        user = reg.user(actor)
        from vpnreg.registry.models import ISP, Organisation

        app = services.apply_for_registration(
            reg.session,
            organisation_id=reg.id_by_name(Organisation, data.organisation),
            isp_id=reg.id_by_name(ISP, data.isp),
            prefixes=data.prefix_requests(),
            subscriber_id=data.subscriber_id,
            protocols=data.protocols,
            submit=not draft and data.submit,
            actor=user,
            now=reg.now(),
            config=reg.config,
        )
        _report(app, "created")


#: The option each step argument comes from.
_OPTION_OF = {"reason": "--reason", "text": "--reason", "reason_code": "--reason-code"}


def _act(
    ref: str, verb: str, actor: str, expect_version: int | None, **arguments: str | None
) -> None:
    """Take one step through the registry's one entry; a missing required option is a usage
    error (exit 2), found by the same table the registry checks."""
    action = action_named(verb)
    if action is not None:
        missing = [name for name, _ in argument_problems(action, dict(arguments))]
        if missing:
            fail(f"{verb} needs {_OPTION_OF.get(missing[0], missing[0])}", EXIT_USAGE)
    with open_registry() as reg:
        app = reg.application(ref)
        step = services.StepRequest(
            action=verb,
            application_id=app.id,
            actor=reg.user(actor),
            expected_version=expect_version,
            arguments=arguments,
        )
        result = services.take_step(reg.session, step, now=reg.now(), config=reg.config)
        _report(result, _DONE[verb])


_DONE = {
    "verify": "verified",
    "endorse": "endorsed",
    "approve": "approved",
    "withdraw": "withdrawn",
    services.RENEW: "renewal created",
    "reject": "rejected",
    "revoke": "revoked",
    "appeal": "appealed",
    "uphold": "upheld",
    "overturn": "overturned",
    "withdraw_attestation": "suspended (attestation withdrawn)",
    "reattest": "re-attested",
}


def _plain_step(verb: str, summary: str) -> Callable[..., None]:
    """A command for a step that needs nothing more than who acts."""

    def command(ref: AppRef, actor: Actor, expect_version: ExpectVersion = None) -> None:
        _act(ref, verb, actor, expect_version)

    command.__doc__ = summary
    command.__name__ = command.__qualname__ = verb
    return command


for _verb, _summary in (
    ("verify", "The ISP attests that the subscriber holds the addresses."),
    ("endorse", "The sector body endorses (for the categories that need it)."),
    ("approve", "The regulator approves; the registration starts when its validity begins."),
    (
        "reattest",
        "The ISP attests again to a registration it had withdrawn its attestation of: it is "
        "back in force (active, or expiring, as its dates say) without a new review.",
    ),
):
    review_app.command(_verb.replace("_", "-"))(_plain_step(_verb, _summary))

withdraw = _plain_step("withdraw", "The applicant withdraws an application before a decision.")
renew = _plain_step(
    services.RENEW,
    f"Ask to continue a registration for {RENEWAL_DAYS} days from its end: a new application "
    f"linked to this one, reviewed again (a first approval is provisional, {PROVISIONAL_DAYS} "
    "days).",
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
    _act(ref, "reject", actor, expect_version, reason_code=reason_code, reason=reason)


@review_app.command("revoke")
def review_revoke(
    ref: AppRef,
    actor: Actor,
    reason: Annotated[str | None, typer.Option(help="Why, in words (required).")] = None,
    reason_code: Annotated[str, typer.Option(help="Machine-readable reason.")] = "revoked",
    expect_version: ExpectVersion = None,
) -> None:
    """Revoke a registration, with a reason."""
    _act(ref, "revoke", actor, expect_version, reason_code=reason_code, reason=reason)


@review_app.command("withdraw-attestation")
def review_withdraw_attestation(
    ref: AppRef,
    actor: Actor,
    reason: Annotated[
        str | None,
        typer.Option(help="Why, e.g. line cancelled, address reassigned (required)."),
    ] = None,
    expect_version: ExpectVersion = None,
) -> None:
    """The ISP withdraws its attestation: the registration is suspended and leaves the feed
    until the ISP re-attests (the regulator may revoke it; it still ends at its end)."""
    _act(ref, "withdraw_attestation", actor, expect_version, reason=reason)


@appeal_app.command("file")
def appeal_file(
    ref: AppRef,
    actor: Actor,
    text: Annotated[
        str | None, typer.Option("--reason", help="Grounds of the appeal (required).")
    ] = None,
    expect_version: ExpectVersion = None,
) -> None:
    """The applicant appeals a rejection."""
    _act(ref, "appeal", actor, expect_version, text=text)


@appeal_app.command("uphold")
def appeal_uphold(
    ref: AppRef,
    actor: Actor,
    reason: Annotated[str | None, typer.Option(help="Why the rejection stands (required).")] = None,
    expect_version: ExpectVersion = None,
) -> None:
    """A regulator upholds the rejection (final)."""
    _act(ref, "uphold", actor, expect_version, reason=reason)


@appeal_app.command("overturn")
def appeal_overturn(
    ref: AppRef,
    actor: Actor,
    reason: Annotated[str | None, typer.Option(help="Why the rejection falls (required).")] = None,
    expect_version: ExpectVersion = None,
) -> None:
    """A different regulator overturns; the application resumes after the rejecting step."""
    _act(ref, "overturn", actor, expect_version, reason=reason)


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


def amend_protocols(
    ref: AppRef,
    actor: Actor,
    protocols: Annotated[
        str,
        typer.Option(
            help="Comma-separated VPN protocols (openvpn, wireguard, ...); empty for any."
        ),
    ] = "",
    expect_version: ExpectVersion = None,
) -> None:
    """Ask for a new VPN protocol list; the old one stays in force until the regulator approves
    (`vpnreg review approve-protocols`) or refuses (`vpnreg review refuse-protocols`)."""
    wanted = [p.strip() for p in protocols.split(",") if p.strip()]
    with open_registry() as reg:
        app = reg.application(ref)
        amendment = services.amend_protocols(
            reg.session,
            application_id=app.id,
            protocols=wanted,
            actor=reg.user(actor),
            now=reg.now(),
            expected_version=expect_version,
        )
        typer.echo(
            f"{app.tracking_number}: protocol amendment {amendment.id} "
            f"({', '.join(amendment.protocols) or 'any'}) awaits the regulator"
        )


def _decide_protocols(ref: str, actor: str, expect_version: int | None, approve: bool) -> None:
    with open_registry() as reg:
        app = reg.application(ref)
        pending = services.pending_protocol_amendment(reg.session, application_id=app.id)
        if pending is None:
            fail(f"{app.tracking_number} has no protocol amendment waiting")
        decided = services.decide_protocol_amendment(
            reg.session,
            amendment_id=pending.id,
            approve=approve,
            actor=reg.user(actor),
            now=reg.now(),
            expected_version=expect_version,
        )
        _report(
            decided,
            f"protocols {', '.join(decided.protocols) or 'any'}"
            + ("" if approve else " kept (amendment refused)"),
        )


@review_app.command("approve-protocols")
def review_approve_protocols(
    ref: AppRef, actor: Actor, expect_version: ExpectVersion = None
) -> None:
    """The regulator puts the application's pending VPN protocol list in force."""
    _decide_protocols(ref, actor, expect_version, approve=True)


@review_app.command("refuse-protocols")
def review_refuse_protocols(
    ref: AppRef, actor: Actor, expect_version: ExpectVersion = None
) -> None:
    """The regulator refuses the pending VPN protocol list; the old one stays in force."""
    _decide_protocols(ref, actor, expect_version, approve=False)


def register(app: typer.Typer) -> None:
    app.command()(apply)
    app.add_typer(review_app, name="review")
    app.add_typer(appeal_app, name="appeal")
    app.command()(withdraw)
    app.command()(renew)
    app.command()(amend)
    app.command("amend-protocols")(amend_protocols)
