"""`vpnreg users|orgs|isps|sector-bodies create`: the people and bodies of the registry."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from vpnreg.cli.registry_context import open_registry
from vpnreg.core.review import Role
from vpnreg.registry import services
from vpnreg.registry.models import ISP, Organisation, SectorBody

#: The actor recorded in the audit log for operator actions from the CLI.
CLI_ADMIN = "cli:admin"

users_app = typer.Typer(help="Logins and their roles.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organisations that apply.", no_args_is_help=True)
isps_app = typer.Typer(help="Internet service providers.", no_args_is_help=True)
sector_app = typer.Typer(help="Sector bodies that endorse.", no_args_is_help=True)


@users_app.command("create")
def create_user(
    username: Annotated[str, typer.Option(help="Login name.")],
    role: Annotated[Role, typer.Option(help="The user's role.")],
    organisation: Annotated[str | None, typer.Option(help="Applicants: organisation name.")] = None,
    isp: Annotated[str | None, typer.Option(help="ISP users: the ISP's name.")] = None,
    sector_body: Annotated[str | None, typer.Option(help="Sector users: the body's name.")] = None,
) -> None:
    """Create a login. The password comes from VPNREG_NEW_PASSWORD, or is asked for."""
    password = os.environ.get("VPNREG_NEW_PASSWORD") or typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    with open_registry() as reg:
        user = services.create_user(
            reg.session,
            username=username,
            password=password,
            role=role,
            actor=CLI_ADMIN,
            now=reg.now(),
            organisation_id=reg.id_by_name(Organisation, organisation) if organisation else None,
            isp_id=reg.id_by_name(ISP, isp) if isp else None,
            sector_body_id=reg.id_by_name(SectorBody, sector_body) if sector_body else None,
        )
        typer.echo(f"user {user.username} created with role {user.role}")


@orgs_app.command("create")
def create_organisation(
    name: Annotated[str, typer.Option(help="The organisation's name.")],
    category: Annotated[str, typer.Option(help="software_house, call_centre, freelancer, ...")],
    registration_number: Annotated[str | None, typer.Option(help="Company number.")] = None,
    national_id: Annotated[
        str | None, typer.Option(help="Individuals: national ID (kept only as a keyed hash).")
    ] = None,
) -> None:
    """Register an organisation (or an individual freelancer)."""
    with open_registry() as reg:
        org = services.create_organisation(
            reg.session,
            name=name,
            category=category,
            actor=CLI_ADMIN,
            now=reg.now(),
            config=reg.config,
            registration_number=registration_number,
            national_id=national_id,
        )
        typer.echo(f"organisation {org.name} created (id {org.id})")


@isps_app.command("create")
def create_isp(name: Annotated[str, typer.Option(help="The ISP's name.")]) -> None:
    """Register an ISP."""
    with open_registry() as reg:
        isp = services.create_isp(reg.session, name=name, actor=CLI_ADMIN, now=reg.now())
        typer.echo(f"ISP {isp.name} created (id {isp.id})")


@sector_app.command("create")
def create_sector_body(
    name: Annotated[str, typer.Option(help="The body's name.")],
    category: Annotated[list[str], typer.Option(help="A category it covers (repeatable).")],
) -> None:
    """Register a sector body and the categories it endorses."""
    with open_registry() as reg:
        body = services.create_sector_body(
            reg.session, name=name, categories=category, actor=CLI_ADMIN, now=reg.now()
        )
        typer.echo(f"sector body {body.name} created (id {body.id})")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(orgs_app, name="orgs")
    app.add_typer(isps_app, name="isps")
    app.add_typer(sector_app, name="sector-bodies")
