"""`vpnreg tokens create|list|revoke`: API tokens for gateways and other machines."""

from __future__ import annotations

from typing import Annotated

import typer

from vpnreg.cli.registry_context import open_registry

#: The actor recorded in the audit log for operator actions from the CLI.
CLI_ADMIN = "cli:admin"

tokens_app = typer.Typer(help="API tokens (gateways read the feed with one).", no_args_is_help=True)


@tokens_app.command("create")
def create(
    role: Annotated[str, typer.Option(help="The token's role, e.g. gateway.")],
    name: Annotated[str, typer.Option(help="What the token is for, e.g. the gateway's name.")],
) -> None:
    """Create a token and print it once on standard output; only its hash is kept."""
    from vpnreg.registry import services

    with open_registry() as reg:
        token, secret = services.create_token(
            reg.session, name=name, role=role, actor=CLI_ADMIN, now=reg.now()
        )
        typer.echo(secret)
        typer.echo(
            f"token {token.id} ({token.name}, role {token.role}) created; it is shown only once",
            err=True,
        )


@tokens_app.command("list")
def list_(
    active: Annotated[bool, typer.Option("--active", help="Leave revoked tokens out.")] = False,
) -> None:
    """One line per token: id, role, name, created, last used, revoked (never the secret)."""
    from vpnreg.registry import services

    with open_registry() as reg:
        tokens = services.list_tokens(reg.session, include_revoked=not active)
        for token in tokens:
            used = token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "-"
            revoked = (
                f"revoked {token.revoked_at.isoformat(timespec='seconds')}"
                if token.revoked_at
                else "active"
            )
            typer.echo(
                f"{token.id}\t{token.role}\t{token.name}\t"
                f"created {token.created_at.isoformat(timespec='seconds')} by {token.created_by}"
                f"\tlast used {used}\t{revoked}"
            )


@tokens_app.command("revoke")
def revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see tokens list).")],
) -> None:
    """Revoke a token; requests with it are refused from now on."""
    from vpnreg.registry import services

    with open_registry() as reg:
        token = services.revoke_token(
            reg.session, token_id=token_id, actor=CLI_ADMIN, now=reg.now()
        )
        typer.echo(f"token {token.id} ({token.name}) revoked")


def register(app: typer.Typer) -> None:
    app.add_typer(tokens_app, name="tokens")
