"""`vpnreg tokens create|list|revoke`: API tokens for gateways and other machines.

A token has a role (a gateway's) or a user it acts as (an ISP's or an applicant's automation).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from vpnreg.cli.registry_context import open_registry
from vpnreg.cli.runtime import EXIT_USAGE, fail

if TYPE_CHECKING:
    from vpnreg.registry.models import ApiToken

#: The actor recorded in the audit log for operator actions from the CLI.
CLI_ADMIN = "cli:admin"

tokens_app = typer.Typer(
    help="API tokens (gateways read the feed with one; a user's automation acts with one).",
    no_args_is_help=True,
)


@tokens_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="What the token is for, e.g. the gateway's name.")],
    role: Annotated[
        str | None, typer.Option(help="The token's role, e.g. gateway (or give --user).")
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(help="The username the token acts as, with that user's role (or --role)."),
    ] = None,
    expires_days: Annotated[
        int | None, typer.Option(min=1, help="Refuse the token this many days from now.")
    ] = None,
) -> None:
    """Create a token and print it once on standard output; only its hash is kept."""
    from vpnreg.registry import services

    if (role is None) == (user is None):
        fail("give exactly one of --role and --user", EXIT_USAGE)
    with open_registry() as reg:
        now = reg.now()
        token, secret = services.create_token(
            reg.session,
            name=name,
            role=role,
            user_id=reg.user(user).id if user is not None else None,
            expires_at=now + dt.timedelta(days=expires_days) if expires_days else None,
            actor=CLI_ADMIN,
            now=now,
        )
        typer.echo(secret)
        acts = f"user {user}, role {token.role}" if user is not None else f"role {token.role}"
        expires = (
            f", expires {token.expires_at.isoformat(timespec='seconds')}"
            if token.expires_at
            else ""
        )
        typer.echo(
            f"token {token.id} ({token.name}, {acts}{expires}) created; it is shown only once",
            err=True,
        )


def _status(token: ApiToken, now: dt.datetime) -> str:
    if token.revoked_at:
        return f"revoked {token.revoked_at.isoformat(timespec='seconds')}"
    if token.expires_at and token.expires_at <= now:
        return f"expired {token.expires_at.isoformat(timespec='seconds')}"
    if token.user is not None and not token.user.active:
        return "user disabled"
    return "active"


@tokens_app.command("list")
def list_(
    active: Annotated[bool, typer.Option("--active", help="Leave revoked tokens out.")] = False,
) -> None:
    """One line per token: id, role, name, user, created, last used, expires, status (never the
    secret). A user-bound token shows its user's current role."""
    from vpnreg.registry import services
    from vpnreg.registry.services.tokens import effective_role

    with open_registry() as reg:
        now = reg.now()
        tokens = services.list_tokens(reg.session, include_revoked=not active)
        for token in tokens:
            used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "-"
            expires = (
                token.expires_at.isoformat(timespec="seconds") if token.expires_at else "never"
            )
            owner = token.user.username if token.user is not None else "-"
            typer.echo(
                f"{token.id}\t{effective_role(token)}\t{token.name}\tuser {owner}\t"
                f"created {token.created_at.isoformat(timespec='seconds')} by {token.created_by}"
                f"\tlast used {used}\texpires {expires}\t{_status(token, now)}"
            )


@tokens_app.command("revoke")
def revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see tokens list).")],
) -> None:
    """Revoke a token; requests with it are refused from now on (a server running on SQLite may
    take up to VPNREG_TOKEN_CACHE_S, 10 s)."""
    from vpnreg.registry import services

    with open_registry() as reg:
        token = services.revoke_token(
            reg.session, token_id=token_id, actor=CLI_ADMIN, now=reg.now()
        )
        typer.echo(f"token {token.id} ({token.name}) revoked")


def register(app: typer.Typer) -> None:
    app.add_typer(tokens_app, name="tokens")
